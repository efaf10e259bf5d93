"""`omldeploy observability dashboards --out DIR`: the Grafana dashboards for a central Grafana.

`observability` is also the seed's action that re-applies a tenant's monitoring components; the
sub-verb needs no tenant, so on this one verb `--tenant` is checked by the handler instead of argparse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omldeploy import dashboards
from omldeploy.cli.output import Console
from omldeploy.inventory.problems import InventoryError, Problem


def add_subverb(observability: argparse.ArgumentParser) -> None:
    for action in observability._actions:
        if "--tenant" in action.option_strings:
            action.required = False
    sub = observability.add_subparsers(dest="observability_verb", metavar="dashboards", required=False,
                                       parser_class=type(observability))
    p = sub.add_parser("dashboards", help="write the Grafana dashboards (JSON) for a central Grafana")
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write omldeploy-*.json into")
    p.set_defaults(func=cmd_dashboards)


def require_tenant(args: argparse.Namespace) -> None:
    if not getattr(args, "tenant", None):
        raise InventoryError([Problem("--tenant", "tenant", "is required to re-apply a tenant's observability",
                                      allowed="omldeploy observability --tenant NAME, or: omldeploy observability "
                                              "dashboards --out DIR")])


def cmd_dashboards(args: argparse.Namespace) -> int:
    console = Console()
    out = Path(args.out).expanduser()
    try:
        written = dashboards.write(out)
    except OSError as exc:
        console.error(f"cannot write the dashboards into {out}: {exc.strerror or exc}; nothing else was done")
        return 2
    for path in written:
        console.say(f"  {path}")
    console.say(f"{len(written)} dashboard(s) written: import them into Grafana (Dashboards > New > Import) and "
                "choose the Prometheus and Loki data sources that hold your tenants' series.")
    return 0
