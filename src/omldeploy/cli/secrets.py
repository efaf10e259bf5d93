"""`omldeploy secrets init|rotate`: vault a tenant's passwords, rotate one secret end to end."""

from __future__ import annotations

import argparse
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.cli.parser import EXIT_INPUT
from omldeploy.ops.converge import Reporter

#: ops.secrets.ROTATIONS' keys, written out so that building the parser (every command) does not import
#: the rotation code; a unit test keeps the two equal
WHAT = ("postgres", "ami", "keepalived", "redis", "bucket")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("secrets", help="move the inventory's passwords into an Ansible Vault; rotate one secret")
    ssub = p.add_subparsers(dest="secrets_verb", metavar="init|rotate", parser_class=type(p))
    init = ssub.add_parser("init", help="move every password of inventory.yml into an encrypted vault.yml beside "
                                        "it (the render must stay byte-identical; idempotent)")
    context.add_tenant_arg(init)
    init.set_defaults(func=_init)
    rot = ssub.add_parser("rotate", help="new secret, written where it lives, changed on the service, what uses it "
                                         "restarted, then verified (re-run to finish an interrupted one)")
    context.add_tenant_arg(rot)
    rot.add_argument("--what", required=True, choices=WHAT)
    rot.add_argument("--dry-run", action="store_true", help="say where the secret lives and what would restart")
    rot.set_defaults(func=_rotate)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_INPUT)[1])


def _reporter() -> tuple[Console, Reporter]:
    console = Console()
    return console, Reporter(say=console.say, warn=console.warn)


def _init(args: argparse.Namespace) -> int:
    from omldeploy.ops.secrets import SecretsError, init

    console, reporter = _reporter()
    tenant = context.load(args)
    try:
        return init(tenant, reporter)
    except SecretsError as exc:
        console.error(str(exc))
        return exc.code


def _rotate(args: argparse.Namespace) -> int:
    from omldeploy.ops.secrets import SecretsError, rotate

    console, reporter = _reporter()
    tenant = context.load(args)
    try:
        return rotate(tenant, str(args.what), reporter, dry_run=bool(args.dry_run))
    except SecretsError as exc:
        console.error(str(exc))
        return exc.code
