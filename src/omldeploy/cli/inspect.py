"""Verbs that need no host: validate, plan, render, releases."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omldeploy.catalog.releases import images, releases
from omldeploy.cli import context
from omldeploy.cli.output import Console, problem_data
from omldeploy.inventory import Tenant
from omldeploy.placement import compute_facts
from omldeploy.render.build import render_tenant
from omldeploy.render.bundle import Bundle
from omldeploy.render.write import write_bundle


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a tenant's inventory and report every problem")
    context.add_tenant_arg(p)
    p.add_argument("--json", action="store_true",
                   help="problems and warnings (file, line, key, found, allowed) as JSON; exit 2 on errors")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show, per host, the components, images, units and files")
    context.add_tenant_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("render", help="write every host's artifacts to a folder for inspection")
    context.add_tenant_arg(p)
    p.add_argument("--out", metavar="DIR", help="output folder (default: <tenant>/.omldeploy/rendered)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("releases", help="list the bundled release catalog")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_releases)


def _summary(console: Console, tenant: Tenant) -> None:
    console.say(f"tenant {tenant.name}: {tenant.layout.describe()} — {len(tenant.hosts)} host(s)")
    for w in tenant.warnings:
        console.warn(w)


def cmd_validate(args: argparse.Namespace) -> int:
    console = Console()
    if args.json:
        return _validate_json(args, console)
    tenant = context.load(args)
    _summary(console, tenant)
    console.say(f"{tenant.inventory_path}: valid")
    return 0


def _validate_json(args: argparse.Namespace, console: Console) -> int:
    """Every problem as data on stdout (nothing on stderr): same verdict and exit code as the text form."""
    tenant, problems = context.load_with_problems(args)
    errors = [problem_data(p) for p in problems if p.severity == "error"]
    console.json({
        "tenant": str(args.tenant),
        "inventory": None if tenant is None else str(tenant.inventory_path),
        "valid": tenant is not None and not errors,
        "layout": None if tenant is None else tenant.layout.name,
        "description": None if tenant is None else tenant.layout.describe(),
        "hosts": None if tenant is None else len(tenant.hosts),
        "problems": errors,
        "warnings": [problem_data(p) for p in problems if p.severity != "error"],
    })
    return 2 if tenant is None or errors else 0


def cmd_plan(args: argparse.Namespace) -> int:
    console = Console()
    tenant = context.load(args)
    bundle = render_tenant(tenant)
    if args.json:
        console.say(json.dumps(plan_data(tenant, bundle), indent=2))
        return 0
    _summary(console, tenant)
    facts = compute_facts(tenant)
    console.say(f"addresses: data {facts.data_host}, voice {facts.voice_host}, web {facts.application_host}, "
                f"postgres {facts.postgres_host}:{facts.postgres_port}, redis {facts.redis_host}, "
                f"bucket {facts.s3_endpoint or 'AWS S3'}")
    for hb in bundle.hosts:
        console.say("")
        console.say(f"== {hb.host} ({hb.address}:{hb.port}, LAN {hb.lan_ip}) roles: {', '.join(hb.roles) or '-'}"
                    f"; units: {hb.unit_style}")
        rows = []
        for u in sorted(hb.units, key=lambda u: (u.start_order, u.name)):
            health = u.health["kind"]
            if u.health.get("port"):
                health += f" {u.health['host']}:{u.health['port']}"
            rows.append((u.name + ".service", u.image, "yes" if u.enabled else "standby", health))
        console.table(("unit", "image", "enabled", "health check"), rows)
        secret = sum(1 for f in hb.files if f.secret)
        console.say(f"  files: {len(hb.files)} ({secret} secret, mode 0600); host units: "
                    f"{', '.join(hb.host_units) or 'none'}")
        for f in sorted(hb.files, key=lambda f: f.path):
            flag = " secret" if f.secret else ""
            keep = " (created once, then yours)" if f.only_if_missing else ""
            console.say(f"    {f.mode:04o} {f.path}{flag}{keep}")
    return 0


def plan_data(tenant: Tenant, bundle: Bundle) -> dict[str, Any]:
    return {
        "tenant": tenant.name,
        "layout": tenant.layout.name,
        "description": tenant.layout.describe(),
        "versions": dict(tenant.versions),
        "facts": asdict(compute_facts(tenant)),
        "warnings": list(tenant.warnings),
        "hosts": [hb.manifest() for hb in bundle.hosts],
    }


def cmd_render(args: argparse.Namespace) -> int:
    console = Console()
    tenant = context.load(args)
    bundle = render_tenant(tenant)
    out = Path(args.out).resolve() if args.out else tenant.folder / ".omldeploy" / "rendered"
    try:
        written = write_bundle(bundle, out)
    except FileExistsError as exc:
        console.error(str(exc))
        return 2
    _summary(console, tenant)
    for root in written:
        count = sum(1 for p in root.rglob("*") if p.is_file())
        console.say(f"  {root}  ({count} files)")
    console.say(f"rendered into {out}")
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    """The catalog: per release its date, whether its start may run Django migrations, and whether this
    version of omldeploy can deploy it (and if not, why); --json adds every tag and the image table."""
    console = Console()
    rels = releases()
    if args.json:
        data = {
            "releases": [{"name": r.name, "date": r.date, "migrations": r.migrations, "deployable": r.deployable,
                          "refusal": r.refusal, "versions": r.tags, "note": r.note} for r in rels],
            "images": {k: {"image": f"{v.registry}/{v.repo}", "tag_key": v.tag_key, "default": v.default,
                           "optional": v.optional} for k, v in images().items()},
        }
        console.say(json.dumps(data, indent=2))
        return 0
    rows = [(r.name, r.date, "may run" if r.migrations else "no", "yes" if r.deployable else "NO",
             r.tags.get("omnileads_version", "-"), r.refusal or r.note) for r in rels]
    console.table(("release", "date", "migrations", "deployable", "omlapp", "notes"), rows, indent="")
    console.say("")
    console.say("Use `omnileads_release: <release>` in an inventory; explicit *_version keys still win. "
                "Every tag: omldeploy releases --json. Adding a release: docs/releases.md.")
    return 0
