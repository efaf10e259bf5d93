"""What the HA e2e modules share: the sandbox layout, VIPs, and small bounded-wait helpers.

Hosts map to the seed's HA example in order: h1 sql_1, h2 sql_2, h3 voice_1, h4 voice_2, h5 app_1,
h6 app_2, h7 haproxy_1, h8 haproxy_2. The VIPs are free addresses of the sandbox subnet (.201-.204).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from omldeploy.sandbox import Sandbox

NAME = os.environ.get("OMLDEPLOY_E2E_NAME", "e2e") + "-ha"
ROOT = Path(__file__).resolve().parents[3]
ROLES = ("sql_1", "sql_2", "voice_1", "voice_2", "app_1", "app_2", "haproxy_1", "haproxy_2")
ALL = tuple(f"h{i}" for i in range(1, 9))
T = TypeVar("T")
#: failover rounds per measured scenario. CI runs one (the behaviour is proven on both nodes of each
#: pair by the planned moves back); OMLDEPLOY_E2E_ROUNDS=3 gives the medians quoted in docs/ha.md.
ROUNDS = max(1, int(os.environ.get("OMLDEPLOY_E2E_ROUNDS", "1")))


def cli(instances: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(instances), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def until(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 1.0) -> T:
    """Bounded retry on a fact: the probe's first truthy result, or a failure naming the last one."""
    end = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, AssertionError) as exc:
            last = exc
        if time.monotonic() > end:
            pytest.fail(f"{what}: not true after {timeout:.0f} s (last: {last!r})")
        time.sleep(every)


def start_unit(sb: Sandbox, host: str, unit: str, timeout: float = 60.0) -> None:
    """`systemctl start` as an operator types it, then wait (bounded) until the unit is active.

    On the sandbox hosts (nspawn, kernel cgroup v2) a start right after a stop can fail once with
    `status=219/CGROUP` while systemd still removes the old cgroup ("Failed to kill control group …
    Input/output error"); Restart=on-failure starts it again 100 ms later. What counts is the unit
    being active, which is also what the apply engine waits for."""
    sb.run(host, f"systemctl start {unit}", check=False)
    until(f"{unit} active on {host}", lambda: sb.run(host, f"systemctl is-active {unit}", check=False
                                                     ).stdout.strip() == "active", timeout, 0.2)


def vips(sb: Sandbox) -> dict[str, str]:
    net = sb.host("h1").ip.rsplit(".", 1)[0]
    return {"rw": f"{net}.201", "ro": f"{net}.202", "voice": f"{net}.203", "web": f"{net}.204"}


def holders(sb: Sandbox, vip: str, hosts: tuple[str, ...] = ALL) -> list[str]:
    """Hosts (among `hosts`, which must be up) that hold `vip` on an interface."""
    return [h for h in hosts if f" {vip}/" in sb.run(h, "ip -o -4 addr show").stdout]


def psql(sb: Sandbox, host: str, sql: str, db: str = "postgres", check: bool = True) -> str:
    """psql inside the host's PostgreSQL container, over its local socket."""
    return sb.run(host, f"podman exec oml-postgresql-server psql -X -q -t -A -U omnileads -d {db} "
                        f"-c {json.dumps(sql)}", check=check).stdout.strip()


def app_sql(sb: Sandbox, sql: str, host: str = "") -> str:
    """psql from app_1 with the app's own env file (PGHOST = RW VIP unless `host` is given)."""
    pg_image = sb.run("h5", "podman images --format '{{.Repository}}:{{.Tag}}' | grep /omnileads/postgres: "
                            "| head -n 1").stdout.strip()
    target = f"-e PGHOST={host} " if host else ""
    return sb.run("h5", f"podman run --rm --network=host --env-file=/etc/default/django.env {target}"
                        f"{pg_image} psql -X -q -t -A -v ON_ERROR_STOP=1 -c {json.dumps(sql)}").stdout.strip()
