"""`omldeploy backup`, `omldeploy restore` and `omldeploy backups list|verify|prune`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from omldeploy.backup import catalog, layout
from omldeploy.cli import context
from omldeploy.cli.completion import remember_backup_ids
from omldeploy.cli.output import Console
from omldeploy.ops.converge import Reporter
from omldeploy.state.lock import TenantBusy

EXIT_INPUT, EXIT_BUSY = 2, 4


def _reporter() -> Reporter:
    console = Console()
    return Reporter(say=console.say, warn=console.warn)


def _busy(exc: TenantBusy) -> int:
    Console().error(f"{exc}; wait for it to finish (nothing was done)")
    return EXIT_BUSY


def configure_action_parser(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "backup":
        parser.add_argument("--format", choices=("custom", "plain"), default="custom",
                            help="custom: pg_dump -Fc, stored as .dump (default); plain: SQL text, stored as .sql")
        parser.add_argument("--verify", action="store_true",
                            help="re-read every object after the upload and prove the dump readable")
        parser.set_defaults(func=_backup)
    elif name == "restore":
        parser.add_argument("--ts", metavar="ID",
                            help="backup id to restore (default: restore_file_timestamp from the inventory)")
        parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--drop-previous", action="store_true",
                            help="drop the replaced database after a successful restore instead of keeping it "
                                 "as <db>__previous")
        parser.set_defaults(func=_restore)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("backups", help="list, verify and prune the backups in a tenant's bucket")
    bsub = p.add_subparsers(dest="backups_verb", metavar="list|verify|prune", parser_class=type(p))
    ls = bsub.add_parser("list", help="backups in the bucket: id, date, size, age, verified")
    context.add_tenant_arg(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    vf = bsub.add_parser("verify", help="re-read objects, check sha256, prove the dump readable")
    context.add_tenant_arg(vf)
    vf.add_argument("--ts", metavar="ID", help="one backup (default: every backup)")
    vf.set_defaults(func=_verify)
    pr = bsub.add_parser("prune", help="delete old backups (dry run unless --yes)")
    context.add_tenant_arg(pr)
    pr.add_argument("--keep", type=int, metavar="N", help="keep the N newest backups")
    pr.add_argument("--keep-days", type=float, metavar="D", help="keep backups younger than D days")
    pr.add_argument("--yes", "-y", action="store_true", help="really delete")
    pr.set_defaults(func=_prune)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_INPUT)[1])


def _backup(args: argparse.Namespace) -> int:
    from omldeploy.ops.backup import backup

    tenant = context.load(args)
    try:
        return backup(tenant, _reporter(), fmt=args.format, verify=bool(args.verify))
    except TenantBusy as exc:
        return _busy(exc)


def _restore(args: argparse.Namespace) -> int:
    from omldeploy.ops.restore import restore

    tenant = context.load_for_apply(args)
    console = Console()
    bid = args.ts or (tenant.settings.text("restore_file_timestamp")
                      if tenant.settings.has("restore_file_timestamp") else "")
    if not bid:
        console.error("which backup? give --ts ID or set restore_file_timestamp in the inventory "
                      f"(see `omldeploy backups list --tenant {tenant.name}`); nothing was done")
        return EXIT_INPUT
    if not args.yes and sys.stdin.isatty():
        console.say(f"This replaces the database of tenant {tenant.name} with backup {bid} and briefly stops the "
                    "components that use it.")
        answer = input(f"Type the tenant name ({tenant.name}) to go on: ").strip()
        if answer != tenant.name:
            console.error("not confirmed; nothing was done")
            return EXIT_INPUT
    try:
        return restore(tenant, _reporter(), bid, drop_previous=bool(args.drop_previous))
    except TenantBusy as exc:
        return _busy(exc)


def _list(args: argparse.Namespace) -> int:
    from omldeploy.ops.backup import list_backups

    tenant = context.load(args)
    console = Console()
    # With --json, stdout carries the one JSON document: the session's progress lines go to stderr.
    reporter = Reporter(say=lambda text: print(text, file=sys.stderr), warn=console.warn) if args.json \
        else _reporter()
    code, entries, media = list_backups(tenant, reporter)
    if code:
        return code
    remember_backup_ids(tenant.folder, (e.id for e in entries if e.kind != "incomplete"))
    now = time.time()
    if args.json:
        console.json({"tenant": tenant.name, "media_root_objects": media, "backups": [
            {**e.to_json(), "age_seconds": None if e.created_epoch is None else int(now - e.created_epoch)}
            for e in entries]})
        return 0
    if not entries:
        console.say(f"no backups for tenant {tenant.name}")
        return 0
    rows = []
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created_epoch)) if e.created_epoch else "-"
        verified = e.verified
        if e.verified_epoch:
            verified += f" ({catalog.human_age(now - e.verified_epoch)} ago)"
        rows.append((e.id, when, catalog.human_size(e.size),
                     catalog.human_age(None if e.created_epoch is None else now - e.created_epoch),
                     str(e.objects), e.kind, verified))
    console.table(("id", "created", "size", "age", "objects", "kind", "verified"), rows)
    for e in entries:
        if e.verify_detail:
            console.say(f"  {e.id}: {e.verify_detail}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from omldeploy.ops.backup import verify

    tenant = context.load(args)
    if args.ts and not layout.valid_id(args.ts):
        Console().error(f"'{args.ts}' is not a backup id")
        return EXIT_INPUT
    try:
        return verify(tenant, _reporter(), args.ts)
    except TenantBusy as exc:
        return _busy(exc)


def _prune(args: argparse.Namespace) -> int:
    from omldeploy.ops.backup import prune

    tenant = context.load(args)
    if args.keep is None and args.keep_days is None:
        Console().error("give --keep N and/or --keep-days D; nothing was done")
        return EXIT_INPUT
    if args.keep is not None and args.keep < 1:
        Console().error("--keep must be at least 1 (the newest backup is never pruned); nothing was done")
        return EXIT_INPUT
    try:
        return prune(tenant, _reporter(), keep=args.keep, keep_days=args.keep_days, yes=bool(args.yes))
    except TenantBusy as exc:
        return _busy(exc)
