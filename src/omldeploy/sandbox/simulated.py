"""Simulated hosts for fleet-wide reads: answers a tenant's read-only steps from their own arguments.

`fleet status` over 1,000 tenants cannot be run against 1,000 sandbox hosts. What it costs on the
controller (loading and rendering every inventory, building the steps, parsing the reports, judging)
can be measured with hosts that answer instantly, as the real host module would for a host in the
given condition. Used by bench/fleet.py and the unit tests; never by the product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from omldeploy.apply.engine import HostResult, RunResult, Step
from omldeploy.inventory.model import Tenant


@dataclass
class Condition:
    """How a tenant's hosts look. Default: exactly as rendered, every unit healthy, a backup an hour old."""

    stopped: tuple[str, ...] = ()  # units inactive
    edited: tuple[str, ...] = ()  # files that differ (paths)
    unreachable: bool = False
    timeout: bool = False
    backup_age_s: float | None = 3600.0  # None: no backup in the bucket
    latency_s: float = 0.0  # a real run's wall time, simulated


@dataclass
class SimulatedHosts:
    conditions: dict[str, Condition] = field(default_factory=dict)
    runs: int = 0

    def __call__(self, tenant: Tenant, steps: list[Step], timeout: int) -> RunResult:
        self.runs += 1
        cond = self.conditions.get(tenant.name, Condition())
        if cond.latency_s:
            time.sleep(min(cond.latency_s, timeout))
        hosts = sorted({h for s in steps for h in s.args})
        result = RunResult(ok=True, check=True, duration=cond.latency_s, hosts={h: HostResult(h) for h in hosts})
        if cond.timeout:
            result.ok, result.aborted = False, f"stopped after {timeout} s (the run's time limit)"
            return result
        for name, hr in result.hosts.items():
            if cond.unreachable:
                hr.unreachable, hr.error, hr.answered, result.ok = True, "Connection timed out", True, False
                continue
            hr.answered = True
            for step in steps:
                if name in step.args:
                    hr.reports[step.name] = _answer(step.name, step.args[name], cond)
        return result


def _answer(step: str, args: dict[str, Any], cond: Condition) -> dict[str, Any]:
    if step == "stage":
        paths = [f["path"] for f in args["files"] if f["path"] in cond.edited]
        restart = [u["name"] for u in args["units"] if set(u["files"]) & set(paths)]
        return {"changed_files": paths, "diffs": {p: "-old\n+new" for p in paths}, "to_pull": [],
                "removed_units": [], "restart": restart, "changed": bool(paths)}
    if step == "status":
        units = [{"unit": u["name"], "state": "inactive" if u["name"] in cond.stopped else "active",
                  "sub": "dead" if u["name"] in cond.stopped else "running", "image": u["image"],
                  "want_image": u["image"], "healthy": u["name"] not in cond.stopped,
                  "detail": "not running" if u["name"] in cond.stopped else "ok", "uptime": 100.0,
                  "enabled": u["enabled"]} for u in args["units"]]
        return {"units": units, "timers": [], "changed": False}
    if step == "catalog":
        if cond.backup_age_s is None:
            return {"objects": [], "documents": {}}
        epoch = int(time.time() - cond.backup_age_s)
        bid = str(epoch)  # the layout's id: the epoch second the backup started
        key = f"backup/{bid}/manifest.json"
        return {"objects": [{"key": key, "size": 10}, {"key": f"backup/pgsql-backup-{bid}.dump", "size": 10}],
                "documents": {key: {"objects": [], "created_epoch": epoch, "total_bytes": 10}}}
    return {}
