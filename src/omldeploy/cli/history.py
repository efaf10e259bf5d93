"""`omldeploy history`: a tenant's last operations from its ledger, each with where its time went.

`rollback --list` shows the deployments one can return to; this shows every recorded operation
(install, per-component actions, upgrade, backup, restore, HA actions...), failed ones included, and
the per-host, per-step breakdown the run recorded (apply/timing.py). Reading the ledger needs no host.
"""

from __future__ import annotations

import argparse
from typing import Any

from omldeploy.apply.timing import describe
from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.inventory.problems import InventoryError, Problem
from omldeploy.state import ledger

MAX_LAST = 1000


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("history", help="the tenant's last operations from its ledger, with where their time went")
    context.add_tenant_arg(p)
    p.add_argument("--last", "-n", metavar="N", type=int, default=10, help="how many runs, newest last (default 10)")
    p.add_argument("--action", metavar="A", help="only runs of this action (install, upgrade, backup, ...)")
    p.add_argument("--json", action="store_true", help="the runs as JSON, with their full timing records")
    p.set_defaults(func=cmd_history)


def cmd_history(args: argparse.Namespace) -> int:
    console = Console()
    if not 1 <= args.last <= MAX_LAST:
        raise InventoryError([Problem("--last", "last", "is out of range", found=str(args.last),
                                      allowed=f"1 to {MAX_LAST}")])
    tenant = context.load(args)
    damaged: list[ledger.Damaged] = []
    records = [r for r in ledger.read(tenant.folder, damaged) if not args.action or r.action == args.action]
    records = records[-args.last:]
    if args.json:
        console.json({"tenant": tenant.name, "runs": [_as_json(r) for r in records],
                      "damaged_lines": [d.line for d in damaged]})
        return 0
    for d in damaged:
        console.warn(f"ledger line {d.line} is damaged ({d.reason}); skipped")
    if not records:
        console.say(f"tenant {tenant.name}: no recorded operation" + (f" '{args.action}'" if args.action else ""))
        return 0
    for r in records:
        what = f"{r.changed} file(s) changed, {len(r.restarted)} unit(s) (re)started" if r.hosts else ""
        console.say(f"{r.started}  {r.action:<14} {r.outcome:<7} {r.duration:7.1f} s  by {r.user}"
                    + (f"  {what}" if what else "") + (f"  ({r.detail.splitlines()[0][:100]})" if r.detail else ""))
        timings = r.extra.get("timings") if isinstance(r.extra, dict) else None
        if isinstance(timings, dict):
            for line in describe(timings)[1:]:
                console.say("  " + line)
    return 0


def _as_json(r: ledger.Record) -> dict[str, Any]:
    extra = r.extra if isinstance(r.extra, dict) else {}
    return {"started": r.started, "action": r.action, "outcome": r.outcome, "duration": r.duration, "user": r.user,
            "hosts": r.hosts, "changed": r.changed, "restarted": r.restarted, "detail": r.detail,
            "timings": extra.get("timings")}
