"""`omldeploy logs`: a tenant's unit journals from the controller, without Loki (ops/logs.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.inventory.problems import InventoryError, Problem
from omldeploy.ops import logs
from omldeploy.ops.converge import redactor
from omldeploy.render.build import render_tenant


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("logs", help="read the journal of a tenant's units over SSH (host and component on each line)")
    context.add_tenant_arg(p)
    p.add_argument("--host", metavar="H", help="only this host (default: every host of the tenant)")
    p.add_argument("--component", "-c", metavar="C", help="only this component (e.g. asterisk, nginx, postgresql)")
    p.add_argument("--since", metavar="AGE|DATE", help="from this age (30s, 15m, 2h, 7d) or date 'YYYY-MM-DD[ HH:MM]'")
    p.add_argument("--lines", "-n", metavar="N", type=int, default=None,
                   help="at most the last N lines per host (default 200; with --follow, 10 before following; "
                        "0: no limit)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until interrupted")
    p.add_argument("--grep", metavar="TEXT",
                   help="only lines containing TEXT (case-insensitive unless TEXT has a capital letter)")
    p.add_argument("--json", action="store_true", help="one JSON object per line (time, host, component, text)")
    p.set_defaults(func=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:
    console = Console()
    tenant = context.load(args)
    lines = args.lines if args.lines is not None else (10 if args.follow else 200)
    if not 0 <= lines <= logs.MAX_LINES:
        raise InventoryError([Problem("--lines", "lines", "is out of range", found=str(lines),
                                      allowed=f"0 (no limit) to {logs.MAX_LINES}")])
    query = logs.Query(since=logs.since_arg(args.since) if args.since else None, lines=lines,
                       follow=bool(args.follow), grep=args.grep)
    chosen = logs.targets(tenant, render_tenant(tenant), query, args.host, args.component)
    if not chosen:
        console.warn("no unit matches; nothing to read")
        return 0
    width = max(len(t.host) for t in chosen)
    as_json = bool(getattr(args, "json", False))

    def show(line: logs.Line) -> None:
        if as_json:
            text = json.dumps({"time_us": line.when, "host": line.host, "component": line.component,
                               "text": line.text})
        else:
            text = line.format(width)
        print(text, file=sys.stdout, flush=args.follow)

    try:
        outcome = logs.read(chosen, query, redactor(tenant), show)
    except KeyboardInterrupt:
        return 0  # --follow ends with ^C: that is its normal end
    for host, why in outcome.failed.items():
        console.error(f"{host}: the journal could not be read: {why}")
    return 1 if outcome.failed else 0
