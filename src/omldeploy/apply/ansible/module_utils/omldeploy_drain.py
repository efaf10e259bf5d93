"""Take an app node out of its load balancers before activate restarts anything on it, and back after.

The balancers (HAProxy) ask the node's agent (components/nginx/oml_lb_agent.py) every second; the agent
answers with the state file and notes in `seen_dir` which balancer it told what. Taking the node out:
write `maint`, wait until every balancer has been told (bounded: a balancer that is down never asks),
then until the balancers' connections to the balanced port have ended (bounded: in-flight requests
finish, idle keep-alive connections may linger). Putting it back: write `up ready` and wait until they
have been told. Only the Python standard library is used on the host.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

try:
    from ansible.module_utils.omldeploy_safefs import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        write_atomic,
    )
except ImportError:  # imported directly, beside omldeploy_safefs.py (tests/integration/test_lb_drain.py)
    from omldeploy_safefs import write_atomic  # type: ignore[import-not-found,no-redef,unused-ignore]

READY = "up ready"
OUT = "maint"
NOTICE_SECONDS = 5.0


def current(d: dict[str, Any]) -> str:
    try:
        with open(d["state_file"], encoding="utf-8") as fh:
            return fh.read().strip() or READY
    except OSError:
        return READY


def _told(d: dict[str, Any], peer: str, state: str, since: float) -> bool:
    path = os.path.join(d["seen_dir"], peer)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() == state and os.stat(path).st_mtime >= since
    except OSError:
        return False


def set_state(d: dict[str, Any], state: str) -> dict[str, Any]:
    since = time.time()
    # the agent's folder is mounted into the nginx container: never write through a symlink there
    write_atomic(d["state_file"], (state + "\n").encode(), 0o644)
    t0 = time.monotonic()
    waiting = list(d["peers"])
    while waiting and time.monotonic() - t0 < NOTICE_SECONDS:
        waiting = [p for p in waiting if not _told(d, p, state, since)]
        if waiting:
            time.sleep(0.1)
    return {"state": state, "told": [p for p in d["peers"] if p not in waiting], "not_told": waiting,
            "seconds": round(time.monotonic() - t0, 2)}


def connections(d: dict[str, Any]) -> int:
    """Established connections from the balancers to the balanced port."""
    proc = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{int(d['port'])} )"],
                          capture_output=True, text=True, timeout=10)
    peers = set(d["peers"])
    n = 0
    for line in proc.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[3].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:") in peers:
            n += 1
    return n


def take_out(d: dict[str, Any]) -> dict[str, Any]:
    report = set_state(d, OUT)
    t0 = time.monotonic()
    left = connections(d)
    while left and time.monotonic() - t0 < float(d.get("timeout", 15.0)):
        time.sleep(0.2)
        left = connections(d)
    report.update(idle_after=round(time.monotonic() - t0, 2), connections_left=left)
    return report


def put_back(d: dict[str, Any]) -> dict[str, Any]:
    return set_state(d, READY)
