"""What an operator does in the e2e modules: run omldeploy commands (everything they print kept, for the
no-secret checks) and install several tenants at once, as separate terminals would."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from omldeploy.cli.main import main
from omldeploy.inventory import Tenant
from omldeploy.ops.converge import Reporter, converge


class Ops:
    """The operator's commands, with everything they print kept for the no-secret check."""

    def __init__(self, instances: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.instances, self.capsys = instances, capsys
        self.seen: list[str] = []
        self.stdout = ""

    def __call__(self, *args: str) -> tuple[int, str]:
        code = main(["--instances", str(self.instances), *args])
        out, err = self.capsys.readouterr()
        self.seen.append(out + err)
        self.stdout = out
        return code, out + err

    def json(self, *args: str) -> tuple[int, Any]:
        code, both = self(*args, "--json")
        try:
            return code, json.loads(self.stdout)  # the one document on stdout; warnings go to stderr
        except ValueError:
            raise AssertionError(f"no JSON document on stdout (exit {code}):\n{both}") from None


def install_all(tenants: dict[str, Tenant]) -> None:
    """`install` of every tenant at the same time; each must succeed."""
    codes: dict[str, int] = {}
    lines: list[str] = []

    def install(key: str) -> None:
        codes[key] = converge(tenants[key], "install", Reporter(say=lines.append, warn=lines.append))

    threads = [threading.Thread(target=install, args=(k,)) for k in tenants]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert codes == dict.fromkeys(tenants, 0), "\n".join(lines[-60:])


def power_off_when_done(sandbox: Any, names: tuple[str, ...]) -> None:
    """Cut the power of hosts whose module is over: their tenants would otherwise idle (Prometheus
    scraping, exporters, PostgreSQL) until the session ends, loading the machine under every later
    test. A kept sandbox (OMLDEPLOY_E2E_KEEP=1) keeps them running for inspection."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from omldeploy.sandbox import faults

    if os.environ.get("OMLDEPLOY_E2E_KEEP") == "1":
        return
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        list(pool.map(lambda n: faults.power_off(sandbox, n, hard=True), names))
