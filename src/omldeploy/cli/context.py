"""Where tenants live and how a verb gets its tenant loaded."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from omldeploy.inventory import Tenant, load_tenant, overlap
from omldeploy.inventory.load import load_text
from omldeploy.inventory.problems import InventoryError, Problem, Problems

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")  # \Z: `$` would accept a final newline


def instances_dir(args: argparse.Namespace) -> Path:
    explicit = getattr(args, "instances", None)
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("OMLDEPLOY_INSTANCES")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / "instances").resolve()


def tenant_folder(args: argparse.Namespace) -> Path:
    name = str(args.tenant)
    if not TENANT_NAME.match(name):
        raise InventoryError([Problem("--tenant", "tenant", "is not a valid tenant folder name", found=name,
                                      allowed="letters, digits, '.', '_', '-' (max 63)")])
    folder = instances_dir(args) / name
    if not folder.is_dir():
        root = instances_dir(args)
        known = sorted(p.name for p in root.iterdir() if (p / "inventory.yml").exists()) if root.is_dir() else []
        hint = f"known tenants: {', '.join(known)}" if known else f"no tenants in {root}"
        raise InventoryError([Problem(str(folder), "tenant", f"tenant folder not found ({hint})",
                                      allowed="omldeploy tenant new NAME --layout aio|ait|cloud|ha")])
    return folder


def load(args: argparse.Namespace) -> Tenant:
    return load_tenant(tenant_folder(args), str(args.tenant))


def load_for_apply(args: argparse.Namespace) -> Tenant:
    """`load` for the actions that change hosts: also refuse (exit 2) a tenant that shares a host address
    with another tenant under instances/ (inventory/overlap.py). Read-only verbs (validate, plan, render,
    status) use `load`: a second tenant made from the same example can be validated before it is edited."""
    tenant = load(args)
    overlap.check(tenant, instances_dir(args))
    return tenant


def load_with_problems(args: argparse.Namespace) -> tuple[Tenant | None, list[Problem]]:
    """Like `load`, but hand back every problem, warnings included, as data instead of raising.

    `validate --json` needs the warnings of a valid inventory as structured problems (file, line, key);
    a loaded Tenant only keeps them as formatted text.
    """
    try:
        folder = tenant_folder(args)
        path = folder / "inventory.yml"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            load(args)  # reports the unreadable file exactly as every other verb does
            raise
        problems = Problems(path)
        tenant = load_text(text, path, folder, str(args.tenant), problems)
    except InventoryError as exc:
        return None, list(exc.problems)
    return tenant, list(problems.items)


def add_tenant_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", "-t", required=True, help="tenant folder name under instances/")
