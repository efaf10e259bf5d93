"""`omldeploy tenant new|list`: create a tenant folder from a bundled example, list tenants."""

from __future__ import annotations

import argparse
import os
import re
import secrets
from importlib import resources
from pathlib import Path
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.inventory import load_tenant, overlap
from omldeploy.inventory.problems import InventoryError
from omldeploy.inventory.state_errors import writing

LAYOUTS = {"aio": "inventory_aio.yml", "ait": "inventory_ait.yml", "cloud": "inventory_cloud.yml",
           "ha": "inventory_ha.yml", "ha-aio": "inventory_ha_aio.yml"}
PLACEHOLDER = re.compile(r"CHANGE-ME-[a-z-]+")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("tenant", help="create, list or destroy tenants")
    tsub = p.add_subparsers(dest="tenant_verb", metavar="new|list|destroy", required=True)
    new = tsub.add_parser("new", help="create instances/NAME/inventory.yml from an example")
    new.add_argument("name")
    new.add_argument("--layout", choices=sorted(LAYOUTS), required=True)
    new.add_argument("--force", action="store_true", help="overwrite an existing inventory.yml")
    new.set_defaults(func=cmd_new)
    ls = tsub.add_parser("list", help="list tenants and their layout")
    ls.add_argument("--json", action="store_true", help="tenants as JSON (name, layout, hosts, valid, errors)")
    ls.set_defaults(func=cmd_list)
    de = tsub.add_parser("destroy", help="decommission a tenant: final backup, everything removed from its hosts, "
                                         "its folder archived (prints the plan without --yes)")
    context.add_tenant_arg(de)
    de.add_argument("--yes", "-y", action="store_true", help="really destroy (without it: the plan only)")
    de.add_argument("--keep-backups", action="store_true",
                    help="keep every backup in the bucket (default: the inventory's retention applies)")
    de.add_argument("--no-backup", action="store_true", help="take no final backup (said loudly)")
    de.add_argument("--purge-bucket", action="store_true",
                    help="also remove the tenant's own MinIO volume, with every backup in it")
    de.set_defaults(func=cmd_destroy)


def example_text(layout: str) -> str:
    return resources.files("omldeploy.examples").joinpath(LAYOUTS[layout]).read_text(encoding="utf-8")


def with_random_secrets(text: str) -> str:
    """Every placeholder password becomes a fresh random one: no two tenants share a secret."""
    return PLACEHOLDER.sub(lambda _m: secrets.token_urlsafe(18).replace("-", "x").replace("_", "y"), text)


def cmd_new(args: argparse.Namespace) -> int:
    console = Console()
    name = str(args.name)
    if not context.TENANT_NAME.match(name):
        console.error(f"'{name}' is not a valid tenant name (letters, digits, '.', '_', '-', max 63)")
        return 2
    folder = context.instances_dir(args) / name
    inv = folder / "inventory.yml"
    if inv.exists() and not args.force:
        console.error(f"{inv} already exists (use --force to overwrite)")
        return 2
    with writing(inv, "the new inventory"):
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(inv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(with_random_secrets(example_text(args.layout)))
        os.chmod(inv, 0o600)
    console.say(f"created {inv} (layout {args.layout}, mode 0600, random passwords)")
    console.say(f"edit the host addresses, then: omldeploy validate --tenant {name}")
    for line in _shared_addresses(folder, name):
        console.warn(line)
    return 0


def _shared_addresses(folder: Path, name: str) -> list[str]:
    """What the new tenant (still with the example's addresses) shares with existing tenants: an operator
    who made several tenants from one example learns now which addresses to change, not at install."""
    try:
        tenant = load_tenant(folder, name)
    except InventoryError:
        return []
    found = overlap.find_overlaps(tenant, overlap.other_tenants(folder.parent, folder))
    return [f"{o.host}: {o.key} {o.address} is also used by tenant '{o.other}' (host {o.other_host}); change it "
            f"in {folder / 'inventory.yml'}: install refuses two tenants on one machine" for o in found]


def cmd_list(args: argparse.Namespace) -> int:
    console = Console()
    root = context.instances_dir(args)
    tenants = list_tenants(root)
    if args.json:
        console.json({"instances": str(root), "tenants": tenants})
        return 0
    if not root.is_dir():
        console.say(f"no tenants: {root} does not exist")
        return 0
    if not tenants:
        console.say(f"no tenants in {root}")
        return 0
    rows = [(t["tenant"], t["layout"] or "?", "?" if t["hosts"] is None else str(t["hosts"]),
             "valid" if t["valid"] else f"{t['errors']} error(s)") for t in tenants]
    console.table(("tenant", "layout", "hosts", "inventory"), rows, indent="")
    return 0


def list_tenants(root: Path) -> list[dict[str, Any]]:
    """Every folder under `root` holding an inventory.yml, loaded to say whether it is valid."""
    if not root.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for folder in sorted(p for p in root.iterdir() if (p / "inventory.yml").is_file()):
        try:
            t = load_tenant(folder)
            out.append({"tenant": folder.name, "layout": t.layout.name, "hosts": len(t.hosts), "valid": True,
                        "errors": 0, "warnings": len(t.warnings)})
        except InventoryError as exc:
            out.append({"tenant": folder.name, "layout": None, "hosts": None, "valid": False,
                        "errors": sum(1 for p in exc.problems if p.severity == "error"),
                        "warnings": sum(1 for p in exc.problems if p.severity != "error")})
    return out


def cmd_destroy(args: argparse.Namespace) -> int:
    from omldeploy.ops.converge import Reporter
    from omldeploy.ops.destroy import destroy

    console = Console()
    tenant = context.load(args)
    return destroy(tenant, Reporter(say=console.say, warn=console.warn), yes=bool(args.yes),
                   keep_backups=bool(args.keep_backups), final_backup=not args.no_backup,
                   purge_bucket=bool(args.purge_bucket))
