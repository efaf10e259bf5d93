"""Start-up and health checks of a stand-in: which dependencies it must reach, retries, reporting.

A required dependency that cannot be reached makes the stand-in exit non-zero with a FATAL line
(after SANDBOX_WAIT seconds for "maybe later" failures, at once for wrong credentials), just like a
misconfigured real component would crash-loop under systemd.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from . import probes
from .common import image_name, log
from .probes import Result

Probe = Callable[[], Result]


def probe_table(required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, tuple[Probe, bool]]:
    """Checks by name -> (probe, required). SANDBOX_REQUIRE=a,b overrides the required set; `optional`
    names checks reported by /health without being required (AMI is only probed when named)."""
    override = os.environ.get("SANDBOX_REQUIRE")
    req = set(required if override is None else [x.strip() for x in override.split(",") if x.strip()])
    table: dict[str, tuple[Probe, bool]] = {}
    if "ami" in req or "ami" in optional:
        table["ami"] = (probes.ami_from_env, "ami" in req)
    if os.environ.get("PGHOST") or "postgres" in req:
        table["postgres"] = (probes.postgres, "postgres" in req)
    if os.environ.get("REDIS_HOSTNAME") or os.environ.get("REDIS_HOST") or "redis" in req:
        table["redis"] = (probes.redis_from_env, "redis" in req)
    endpoint = probes.s3_endpoint_from_env()
    if endpoint or "s3" in req:
        table["s3"] = (lambda: probes.s3_from_env(endpoint), "s3" in req)
    return table


def wait_required(table: dict[str, tuple[Probe, bool]]) -> str | None:
    """Run required checks until they pass; return a fatal message, or None when all passed."""
    wait = float(os.environ.get("SANDBOX_WAIT", "30"))
    deadline = time.monotonic() + wait
    for name, (probe, required) in table.items():
        while True:
            res = probe()
            if res.ok:
                log(f"{name}: {res.detail}")
                break
            if not required:
                log(f"{name} (not required): {res.detail}")
                break
            if res.permanent or time.monotonic() > deadline:
                return f"{name}: {res.detail}"
            time.sleep(1)
    return None


class Health:
    """/health: re-runs the checks (at most every 2 s) and adds role-specific facts."""

    def __init__(self, role: str, table: dict[str, tuple[Probe, bool]],
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.role = role
        self.table = table
        self.extra = extra
        self._lock = threading.Lock()
        self._at = 0.0
        self._last: tuple[int, dict[str, Any]] = (503, {})

    def __call__(self) -> tuple[int, Any]:
        with self._lock:
            if time.monotonic() - self._at > 2:
                self._last = self._compute()
                self._at = time.monotonic()
            return self._last

    def _compute(self) -> tuple[int, dict[str, Any]]:
        results = {name: probe() for name, (probe, _req) in self.table.items()}
        ok = all(r.ok for name, r in results.items() if self.table[name][1])
        forced = os.environ.get("SANDBOX_UNHEALTHY", "") == "health"
        body: dict[str, Any] = {
            "role": self.role, "image": image_name(), "ok": ok and not forced, "stand_in": True,
            "reached": {n: r.to_json() for n, r in results.items()},
        }
        if forced:
            body["forced_unhealthy"] = "SANDBOX_UNHEALTHY=health"
        if self.extra is not None:
            body.update(self.extra())
        return (200 if body["ok"] else 503), body
