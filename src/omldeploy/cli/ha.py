"""`omldeploy ha status` and the seed's four HA node actions (`pgsql_node_recovery_main` ...)."""

from __future__ import annotations

import argparse
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.cli.parser import EXIT_INPUT
from omldeploy.ops.converge import Reporter


def _reporter() -> Reporter:
    console = Console()
    return Reporter(say=console.say, warn=console.warn)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("ha", help="HA tenants: state of every pair (PostgreSQL, Redis, VIPs, cron)")
    hsub = p.add_subparsers(dest="ha_verb", metavar="status|drill", parser_class=type(p))
    st = hsub.add_parser("status", help="who is active, who holds each VIP, replication and lag, fenced nodes "
                                        "and the action that repairs them (exit 1 when a pair is degraded)")
    context.add_tenant_arg(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)
    dr = hsub.add_parser("drill", help="fail the active side of one pair, measure the recovery through the VIPs, "
                                       "check the data, put the cluster back (plan only unless --yes)")
    context.add_tenant_arg(dr)
    dr.add_argument("--component", required=True, choices=("postgres", "redis", "voice", "haproxy", "cron"))
    dr.add_argument("--yes", "-y", action="store_true", help="run it (without: print the plan, change nothing)")
    dr.add_argument("--power-off", metavar="CMD",
                    help="fail by powering the active host off with this command ({host} and {ip} are replaced), "
                         "e.g. 'virsh destroy {host}'; default: stop its unit")
    dr.add_argument("--power-on", metavar="CMD", help="the command that powers it on again (with --power-off)")
    dr.set_defaults(func=_drill)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_INPUT)[1])


def action(name: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from omldeploy.ops.ha import run_action

        tenant = context.load_for_apply(args)
        return run_action(tenant, name, _reporter())

    return handler


def _status(args: argparse.Namespace) -> int:
    from omldeploy.ops.ha_facts import NotHA, read

    tenant = context.load(args)
    console = Console()
    try:
        _, pairs = read(tenant)
    except NotHA as exc:
        console.error(f"{exc}; nothing was done")
        return EXIT_INPUT
    code = 0 if all(p.ok for p in pairs) else 1
    if args.json:
        console.json({"tenant": tenant.name, "healthy": code == 0, "pairs": [p.as_dict() for p in pairs]})
        return code
    rows = [(p.name, "ok" if p.ok else "DEGRADED", ", ".join(p.active) or "none",
             (f"{p.vip} on {', '.join(p.vip_holders) or 'nobody'}" if p.vip else "-"),
             "main and backup swapped" if p.swapped else "") for p in pairs]
    console.table(("pair", "state", "active", "VIP", "note"), rows, indent="")
    for p in pairs:
        console.say(f"\n{p.name}:")
        for line in p.details:
            console.say(f"  {line}")
        for problem in p.problems:
            console.warn(f"{p.name}: {problem}")
        if p.repair:
            verb = "repair" if not p.ok else "back to the inventory's layout"
            cmd = p.repair if p.repair.startswith("systemctl") else \
                f"omldeploy {p.repair} --tenant {tenant.name}"
            console.say(f"  {verb}: {cmd}")
    console.say("\nall pairs healthy" if code == 0 else "\nHA DEGRADED")
    return code


def _drill(args: argparse.Namespace) -> int:
    from omldeploy.ops.ha_drill import drill

    tenant = context.load_for_apply(args)
    return drill(tenant, args.component, _reporter(), yes=bool(args.yes), power_off=args.power_off,
                 power_on=args.power_on)
