#!/usr/bin/env python3
"""Benchmark: web-endpoint unavailability during an AIO app upgrade, omldeploy vs the naive order.

Usage (root): PYTHONPATH=src python bench/upgrade_downtime.py [--keep] [--baseline REV]

A probe thread sends HTTPS GETs to nginx every 50 ms (bounded: it stops with the measurement) and
records failures (connection errors or HTTP >= 500). Compared in one run on the same host:
  - `omldeploy upgrade` of omnileads_version A -> B (images pulled first, only changed units restarted
    in dependency order, each waiting for its health check);
  - the naive order: stop every unit, pull the new images, start every unit (then wait healthy).
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.e2e.tenants import write_tenant  # noqa: E402

from omldeploy.catalog.releases import images  # noqa: E402
from omldeploy.inventory import load_tenant  # noqa: E402
from omldeploy.ops.converge import Reporter, converge, wait_until_healthy  # noqa: E402
from omldeploy.ops.upgrade import upgrade  # noqa: E402
from omldeploy.render.build import render_tenant  # noqa: E402
from omldeploy.sandbox import Sandbox, UpRequest, down, up  # noqa: E402
from omldeploy.sandbox.images.build import build_and_push  # noqa: E402


class Probe:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 900  # bounded in time as well
        while not self._stop.is_set() and time.monotonic() < deadline:
            ok = False
            try:
                with urllib.request.urlopen(self.url, timeout=1, context=self.ctx) as resp:
                    ok = resp.status < 500
            except urllib.error.HTTPError as exc:
                ok = exc.code < 500
            except OSError:
                ok = False
            self.results.append((time.monotonic(), ok))
            time.sleep(0.05)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> str:
        failed = sum(1 for _, ok in self.results if not ok)
        return f"{failed} failed of {len(self.results)} requests, longest outage {self.longest():.2f} s"

    def longest(self) -> float:
        """The longest run of failed requests, in seconds."""
        gap = longest = 0.0
        start = None
        for t, ok in self.results:
            if not ok and start is None:
                start = t
            elif ok and start is not None:
                gap = t - start
                longest = max(longest, gap)
                start = None
        if start is not None:
            longest = max(longest, self.results[-1][0] - start)
        return longest


def set_version(path: Path, key: str, tag: str) -> None:
    path.write_text(re.sub(rf"^(\s+){key}:.*$", rf"\g<1>{key}: '{tag}'", path.read_text(), flags=re.M))


def cli(src: Path, inst: Path, *args: str) -> None:
    """One omldeploy command with the code under `src`, as an operator runs it."""
    proc = subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(inst), *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(src)}, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{src}: {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")


def side_by_side(rev: str) -> int:
    """`omldeploy upgrade` of the app with REV's code and with this checkout's, on the same host: each
    installs at one omnileads_version with its own code (its own rendering), then upgrades to the other."""
    worktree = Path(tempfile.mkdtemp(prefix="omldeploy-baseline-")) / "wt"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), rev], check=True,
                   capture_output=True)
    st = up(UpRequest(name="bench-upgrade", hosts=1, oses=("debian12",), registry=True, s3=False))
    try:
        build_and_push(st, only=None)
        sb = Sandbox(st)
        inst = Path(tempfile.mkdtemp(prefix="omldeploy-bench-")) / "instances"
        tenant = write_tenant(inst, "downtime", "aio", sb, [sb.host("h1")])
        ref = images()["omlapp"]
        url = f"https://{sb.host('h1').ip}/"
        rows = []
        for who, src, (a, b) in (("baseline " + rev, worktree / "src", (ref.default, ref.alt)),
                                 ("this checkout", ROOT / "src", (ref.alt, ref.default))):
            set_version(tenant.inventory_path, "omnileads_version", a)
            cli(src, inst, "install", "--tenant", "downtime")
            set_version(tenant.inventory_path, "omnileads_version", b)
            with Probe(url) as probe:
                t0 = time.monotonic()
                cli(src, inst, "upgrade", "--tenant", "downtime", "--no-backup")
                took = time.monotonic() - t0
            rows.append((who, f"{a} -> {b}", took, probe))
        print("\n| code | omlapp | upgrade | failed requests | longest web outage |\n|---|---|---|---|---|")
        for who, what, took, probe in rows:
            failed = sum(1 for _, ok in probe.results if not ok)
            print(f"| {who} | {what} | {took:.1f} s | {failed} of {len(probe.results)} | {probe.longest():.2f} s |")
    finally:
        down("bench-upgrade")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--baseline", metavar="REV", help="the same app upgrade with REV's code, side by side")
    args = ap.parse_args()
    if args.baseline:
        return side_by_side(args.baseline)
    st = up(UpRequest(name="bench-upgrade", hosts=1, oses=("debian12",), registry=True, s3=False))
    try:
        build_and_push(st, only=None)
        sb = Sandbox(st)
        inst = Path(tempfile.mkdtemp(prefix="omldeploy-bench-")) / "instances"
        tenant = write_tenant(inst, "downtime", "aio", sb, [sb.host("h1")])
        ref = images()["omlapp"]
        quiet = Reporter(say=lambda _t: None, warn=lambda _t: None)
        set_version(tenant.inventory_path, "omnileads_version", ref.default)
        assert converge(load_tenant(tenant.folder), "install", quiet) == 0
        url = f"https://{sb.host('h1').ip}/"

        set_version(tenant.inventory_path, "omnileads_version", ref.alt)
        with Probe(url) as probe:
            t0 = time.monotonic()
            assert upgrade(load_tenant(tenant.folder), quiet, backup=False) == 0
            took = time.monotonic() - t0
        print(f"omldeploy upgrade omlapp {ref.default} -> {ref.alt}: {took:.1f} s; {probe.report()}")

        set_version(tenant.inventory_path, "omnileads_version", ref.default)
        new = load_tenant(tenant.folder)
        bundle = render_tenant(new)
        hb = bundle.hosts[0]
        units = [u.name + ".service" for u in sorted(hb.units, key=lambda u: u.start_order)]
        with Probe(url) as probe:
            t0 = time.monotonic()
            sb.run("h1", "systemctl stop " + " ".join(reversed(units)), timeout=600)
            for image in hb.images:
                sb.run("h1", f"podman pull -q {image} >/dev/null", timeout=600)
            # the naive way also re-renders everything; let omldeploy write the files, then start all
            assert converge(new, "install", quiet) == 0
            wait_until_healthy(new)
            took = time.monotonic() - t0
        print(f"naive stop all / pull / start all ({ref.alt} -> {ref.default}): {took:.1f} s; {probe.report()}")
    finally:
        if not args.keep:
            down("bench-upgrade")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
