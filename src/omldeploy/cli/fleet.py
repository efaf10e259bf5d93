"""`omldeploy drift --tenant T` and `omldeploy fleet status|drift|upgrade|drill-restore`.

status and drift are read-only views of one tenant or all. Exit codes: 0 nothing needs attention (no
drift), 1 something does (a tenant unhealthy, unreachable, drifted, invalid, with stale backups...), 2 bad
input (options, no tenant matching `--tenants`). upgrade (ops/rollout.py) and drill-restore act: 0 when
every tenant ended well, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.inventory import load_tenant
from omldeploy.inventory.problems import InventoryError
from omldeploy.ops import drift as drift_op
from omldeploy.ops import fleet as fleet_op
from omldeploy.ops import rollout as rollout_op
from omldeploy.ops.converge import redactor
from omldeploy.state.lock import TenantBusy

MAX_PARALLEL = 256


def _parallel(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number (allowed: 1..{MAX_PARALLEL})") from None
    if not 1 <= n <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"{n} is out of range (allowed: 1..{MAX_PARALLEL})")
    return n


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 100000:
        raise argparse.ArgumentTypeError(f"'{text}' is not a count (allowed: 0..100000)")
    return int(text)


def _positive(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < x < 1e7:
        raise argparse.ArgumentTypeError(f"{text} is out of range (a positive number)")
    return x


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("drift", help="where a tenant's hosts differ from its inventory (read-only)")
    context.add_tenant_arg(p)
    p.add_argument("--diff", action="store_true", help="also print each differing file's diff (secrets masked)")
    p.add_argument("--json", action="store_true", help="findings and diffs as JSON")
    p.add_argument("--timeout", type=_positive, default=300, metavar="S", help="stop after S seconds (default 300)")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("fleet", help="every tenant at once: status, drift, upgrades in waves, restore drills")
    fsub = p.add_subparsers(dest="fleet_verb", metavar="status|drift|upgrade|drill-restore", required=True)
    for name, text in (("status", "one line per tenant: health, versions, drift, backups, certificates"),
                       ("drift", "every tenant's differences with its inventory (read-only)")):
        f = fsub.add_parser(name, help=text)
        f.add_argument("--tenants", default="*", metavar="GLOB", help="only tenants whose name matches (default *)")
        f.add_argument("--parallel", type=_parallel, default=8, metavar="N",
                       help=f"tenants read at the same time (1..{MAX_PARALLEL}, default 8)")
        f.add_argument("--timeout", type=_positive, default=120, metavar="S",
                       help="time limit per tenant, in seconds (default 120)")
        f.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "status":
            f.add_argument("--no-hosts", action="store_true",
                           help="only what the controller knows (inventory, ledger, certificates): no SSH")
            f.add_argument("--no-backups", action="store_true", help="do not list the buckets' backups")
            f.add_argument("--backup-max-age", type=_positive, default=48.0, metavar="HOURS",
                           help="flag tenants whose newest backup is older (default 48)")
            f.add_argument("--drill-max-age", type=_positive, default=30.0, metavar="DAYS",
                           help="flag tenants whose last restore proof is older (default 30)")
            f.set_defaults(func=cmd_fleet_status)
        else:
            f.set_defaults(func=cmd_fleet_drift)
    f = fsub.add_parser("upgrade", help="one release over many tenants in waves, a canary first; halts on a "
                                        "failure, resumable")
    f.add_argument("--release", metavar="X", help="the catalog release (default: the versions each inventory names)")
    f.add_argument("--tenants", default=None, metavar="GLOB", help="only tenants whose name matches (default *)")
    f.add_argument("--waves", default=None, metavar="SPEC",
                   help=f"wave sizes: numbers, percentages, 'rest' last (default {rollout_op.DEFAULT_WAVES})")
    f.add_argument("--parallel", type=_parallel, default=1, metavar="N",
                   help="tenants upgraded at the same time within a wave (default 1)")
    f.add_argument("--max-failures", type=_count, default=0, metavar="N",
                   help="failed tenants allowed before the rollout halts (default 0: the first one halts it)")
    f.add_argument("--no-backup", action="store_true", help="no pre-upgrade backup of each tenant (said loudly)")
    f.add_argument("--check", action="store_true", help="print the waves and what changes; do nothing")
    f.add_argument("--resume", action="store_true", help="go on with the unfinished rollout (retries its failed, "
                                                         "interrupted and pending tenants)")
    f.add_argument("--abandon", action="store_true", help="mark the unfinished rollout abandoned (changes no host)")
    f.add_argument("--json", action="store_true", help="the rollout (plan or outcome) as JSON")
    f.set_defaults(func=cmd_fleet_upgrade)
    f = fsub.add_parser("drill-restore", help="restore each tenant's newest backup into a scratch database, "
                                              "check it, drop it (nothing live is touched)")
    f.add_argument("--tenants", default="*", metavar="GLOB", help="only tenants whose name matches (default *)")
    f.add_argument("--parallel", type=_parallel, default=2, metavar="N",
                   help="drills at the same time (default 2: each loads a whole dump on its database server)")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    when = f.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="CALENDAR",
                      help="instead of drilling now, put these drills on a systemd timer of this controller "
                           "(a systemd calendar: 'Sun 03:00', 'daily'); run again to change it")
    when.add_argument("--unschedule", action="store_true", help="remove that timer")
    f.set_defaults(func=cmd_fleet_drill)


# ----------------------------------------------------------------------------- one tenant

def cmd_drift(args: argparse.Namespace) -> int:
    console = Console()
    tenant = context.load(args)
    found = drift_op.drift(tenant, timeout=int(args.timeout))
    red = redactor(tenant)
    data = found.as_dict()
    data["findings"] = [{**f, "detail": red(f["detail"])} for f in data["findings"]]
    data["diffs"] = {h: {p: red(d) for p, d in diffs.items()} for h, diffs in found.diffs.items()}
    if args.json:
        console.json(data)
        return 1 if found.drifted else 0
    if not found.drifted:
        console.say(f"tenant {tenant.name}: no drift on {len(found.hosts)} host(s) ({found.seconds:.1f} s)")
        return 0
    _print_findings(console, tenant.name, found, red)
    if args.diff:
        for host, diffs in data["diffs"].items():
            for path, diff in diffs.items():
                console.say(f"--- {host}:{path}")
                for line in str(diff).splitlines():
                    console.say(f"    {line}")
    console.say(f"tenant {tenant.name}: {len(found.findings)} difference(s); nothing was changed. "
                f"`omldeploy install --tenant {tenant.name}` brings the hosts back to the inventory "
                f"(--check first shows what it would do)")
    return 1


def _print_findings(console: Console, name: str, found: drift_op.Drift, red: Any) -> None:
    rows = [(f.host, f.kind, f.what, red(f.detail)) for f in found.findings]
    console.say(f"== {name}")
    console.table(("host", "kind", "what", "difference"), rows)


# ----------------------------------------------------------------------------- fleet

def _root(args: argparse.Namespace, console: Console) -> Path | None:
    root = context.instances_dir(args)
    if not fleet_op.tenant_folders(root, args.tenants):
        what = f"matching '{args.tenants}' " if args.tenants != "*" else ""
        console.error(f"no tenant {what}in {root} (a tenant is a folder holding inventory.yml)")
        return None
    return root


class _Progress:
    """`[12/300] name health` on one line of a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()

    def __call__(self, row: fleet_op.Row, n: int, total: int) -> None:
        if self.on:
            sys.stderr.write(f"\r\033[K[{n}/{total}] {row.tenant}: {row.health}")
            sys.stderr.flush()

    def end(self) -> None:
        if self.on:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def cmd_fleet_status(args: argparse.Namespace) -> int:
    console = Console()
    root = _root(args, console)
    if root is None:
        return 2
    opts = fleet_op.Options(pattern=args.tenants, parallel=args.parallel, timeout=int(args.timeout),
                            hosts=not args.no_hosts, backups=not args.no_backups,
                            backup_max_hours=args.backup_max_age, proof_max_days=args.drill_max_age)
    progress = _Progress()
    try:
        rows = fleet_op.survey(root, opts, progress)
    finally:
        progress.end()
    summary = fleet_op.summary(rows)
    code = 1 if summary["attention"] else 0
    if args.json:
        console.json({"instances": str(root), "tenants": [r.as_dict() for r in rows], "summary": summary})
        return code
    table = [(r.tenant, r.layout or "?", r.omlapp or "-", r.health, _drift(r), _last(r),
              _hours(r.backup_age_hours, r.backups_read),
              _days(r.proof_age_days), "-" if r.cert_days_left is None else f"{r.cert_days_left}d",
              "YES" if r.attention else "")
             for r in rows]
    console.table(("tenant", "layout", "omlapp", "health", "drift", "last operation", "backup", "proof", "cert",
                   "attention"), table, indent="")
    flagged = [r for r in rows if r.attention]
    if flagged:
        console.say("")
        console.say("needs attention:")
        for r in flagged:
            console.say(f"  {r.tenant}: " + "; ".join(r.attention))
    health = ", ".join(f"{k} {v}" for k, v in sorted(summary["health"].items()))
    console.say("")
    console.say(f"{summary['tenants']} tenant(s): {health}; {summary['attention']} need(s) attention")
    return code


def _drift(r: fleet_op.Row) -> str:
    return "-" if r.drift is None else ("none" if r.drift == 0 else str(r.drift))


def _last(r: fleet_op.Row) -> str:
    if not r.last_op:
        return "-"
    return f"{r.last_op['action']} {r.last_op['outcome']} {str(r.last_op['started'])[:16]}"


def _hours(h: float | None, read: bool) -> str:
    if h is None:
        return "never" if read else "?"  # not read: scheduled backups are only in the bucket
    return f"{h:.0f}h ago" if h < 72 else f"{h / 24:.0f}d ago"


def _days(d: float | None) -> str:
    return "never" if d is None else f"{d:.0f}d ago"


def cmd_fleet_drift(args: argparse.Namespace) -> int:
    console = Console()
    root = _root(args, console)
    if root is None:
        return 2
    folders = fleet_op.tenant_folders(root, args.tenants)
    progress = _Progress()

    def one(folder: Path) -> dict[str, Any]:
        try:
            tenant = load_tenant(folder, folder.name)
        except InventoryError as exc:
            errors = sum(1 for p in exc.problems if p.severity == "error")
            return {"tenant": folder.name, "error": f"inventory has {errors} error(s)", "drifted": None}
        found = drift_op.drift(tenant, timeout=int(args.timeout))
        red = redactor(tenant)
        data = found.as_dict()
        data["findings"] = [{**f, "detail": red(f["detail"])} for f in data["findings"]]
        data["diffs"] = {h: {p: red(d) for p, d in diffs.items()} for h, diffs in found.diffs.items()}
        data["_found"], data["_red"] = found, red
        return data

    results: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for n, data in enumerate(pool.map(one, folders), 1):
                results.append(data)
                progress(fleet_op.Row(data["tenant"], health="drift" if data.get("drifted") else "ok"), n,
                         len(folders))
    finally:
        progress.end()
    bad = [d for d in results if d.get("drifted") or d.get("drifted") is None]
    if args.json:
        console.json({"instances": str(root), "tenants": [{k: v for k, v in d.items() if not k.startswith("_")}
                                                          for d in results],
                      "summary": {"tenants": len(results), "drifted": len(bad)}})
        return 1 if bad else 0
    for d in results:
        if d.get("error"):
            console.say(f"== {d['tenant']}: not checked: {d['error']} (omldeploy validate --tenant {d['tenant']})")
        elif d["drifted"]:
            _print_findings(console, d["tenant"], d["_found"], d["_red"])
        else:
            console.say(f"== {d['tenant']}: no drift")
    console.say("")
    console.say(f"{len(results)} tenant(s), {len(bad)} with drift or not checked; nothing was changed")
    return 1 if bad else 0


def cmd_fleet_drill(args: argparse.Namespace) -> int:
    from omldeploy.ops.converge import Reporter
    from omldeploy.ops.drill import drill

    console = Console()
    if args.unschedule:
        from omldeploy.ops import drill_schedule

        where = context.instances_dir(args)
        gone = drill_schedule.unschedule(where)
        console.say(f"drill schedule of {where} removed" if gone else f"no drill schedule for {where}")
        return 0
    root = _root(args, console)
    if root is None:
        return 2
    if args.schedule is not None:
        return _schedule(args, console, root)
    folders = fleet_op.tenant_folders(root, args.tenants)
    quiet = args.json or len(folders) > 1  # several at once: one line each, the details in each run log

    def one(folder: Path) -> dict[str, Any]:
        try:
            tenant = load_tenant(folder, folder.name)
        except InventoryError as exc:
            errors = sum(1 for p in exc.problems if p.severity == "error")
            return {"tenant": folder.name, "ok": False, "error": f"inventory has {errors} error(s)"}
        lines: list[str] = []
        say = lines.append if quiet else console.say
        try:
            code, figures = drill(tenant, Reporter(say=say, warn=console.warn))
        except TenantBusy as exc:
            return {"tenant": folder.name, "ok": False, "error": str(exc)}
        out = {"tenant": folder.name, "ok": code == 0, **figures}
        if code != 0 and "error" not in out:
            out["error"] = next((x for x in reversed(lines) if x.startswith("FAILED")), "failed")
        if "error" in out:
            out["error"] = redactor(tenant)(str(out["error"]))
        return out

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(one, folders))
    failed = [r for r in results if not r["ok"]]
    if args.json:
        console.json({"instances": str(root), "tenants": results,
                      "summary": {"tenants": len(results), "failed": len(failed)}})
        return 1 if failed else 0
    if quiet:
        for r in results:
            if r["ok"]:
                console.say(f"{r['tenant']}: ok: backup {r.get('id')}, {r.get('tables')} table(s), "
                            f"{r.get('restore_seconds')}s to restore")
            else:
                console.say(f"{r['tenant']}: FAILED: {r.get('error')}")
    console.say(f"{len(results)} tenant(s) drilled, {len(failed)} failed; nothing live was touched")
    return 1 if failed else 0


def _schedule(args: argparse.Namespace, console: Console, root: Path) -> int:
    from omldeploy.ops import drill_schedule

    try:
        timer, calendar = drill_schedule.schedule(root, pattern=args.tenants, calendar=args.schedule,
                                                  parallel=args.parallel)
    except drill_schedule.ScheduleError as exc:
        console.error(str(exc))
        return 2 if str(exc).startswith("--schedule") else 1
    console.say(f"restore drills of {root} ({args.tenants}) scheduled: {timer}, {calendar}; results in each "
                f"tenant's ledger and `journalctl -u {timer[:-6]}.service`; `fleet status` flags stale proofs")
    return 0


# ----------------------------------------------------------------------------- fleet upgrade

def cmd_fleet_upgrade(args: argparse.Namespace) -> int:
    console = Console()
    root = context.instances_dir(args)
    try:
        return _fleet_upgrade(args, console, root)
    except rollout_op.RolloutError as exc:
        console.error(f"{exc} (nothing was done)")
        return 2


def _fleet_upgrade(args: argparse.Namespace, console: Console, root: Path) -> int:
    if args.abandon:
        if args.resume or args.check:
            raise rollout_op.RolloutError("--abandon goes alone (not with --resume or --check)")
        gone = rollout_op.abandon(root)
        console.say(f"rollout {gone.id} abandoned: {len(gone.todo())} tenant(s) it had not upgraded are left as "
                    "they are; a new `fleet upgrade` plans afresh")
        return 0
    current = rollout_op.unfinished(root)
    if args.resume:
        if current is None:
            raise rollout_op.RolloutError("no unfinished rollout to resume (see instances/.omldeploy/rollouts/)")
        if args.release is not None and args.release != current.release:
            raise rollout_op.RolloutError(f"rollout {current.id} rolls {_what(current.release)}, not release "
                                          f"{args.release}: resume it as it is, or --abandon it first")
        if args.tenants is not None or args.waves is not None:
            raise rollout_op.RolloutError("a resumed rollout keeps its tenants and waves: drop --tenants/--waves")
        rollout = current
    else:
        if current is not None:
            raise rollout_op.RolloutError(
                f"rollout {current.id} ({_what(current.release)}) is {current.status} with {len(current.todo())} "
                "tenant(s) left: go on with --resume, or drop it with --abandon")
        rollout = rollout_op.plan(root, release=args.release, pattern=args.tenants or "*",
                                  waves=args.waves or rollout_op.DEFAULT_WAVES)
    todo = rollout.todo()
    if args.check or not todo:
        if args.json:
            console.json({"check": bool(args.check), "rollout": rollout.as_dict(), "todo": todo})
        else:
            _print_plan(console, rollout, resumed=args.resume)
            console.say("nothing to upgrade" if not todo else "--check: nothing was done")
        return 0
    out = console.warn if args.json else console.say
    if not args.json:
        _print_plan(console, rollout, resumed=args.resume)
    if args.no_backup:
        console.warn("--no-backup: every tenant is upgraded WITHOUT a pre-upgrade backup")

    def event(e: rollout_op.Event) -> None:
        if e.kind == "wave":
            tag = " (canary)" if e.wave == 1 and len(rollout.waves) > 1 else ""
            out(f"wave {e.wave}/{e.waves}{tag}: {len(e.names)} tenant(s): {_names(e.names)}")
        elif e.entry is not None:
            x = e.entry
            if x.state == "ok":
                out(f"  {x.tenant}: upgraded in {x.seconds}s")
            else:
                out(f"  {x.tenant}: FAILED after {x.seconds}s: {x.detail}")

    code = rollout_op.run(root, rollout, parallel=args.parallel, max_failures=args.max_failures,
                          backup=not args.no_backup, on_event=event)
    if args.json:
        console.json({"check": False, "rollout": rollout.as_dict(), "todo": rollout.todo()})
        return code
    failed = sorted(n for n, e in rollout.entries.items() if e.state == "failed")
    summary = (f"{rollout.count('ok')} upgraded, {rollout.count('already')} already at the target, "
               f"{len(failed)} failed, {rollout.count('pending')} not started")
    if rollout.status == "done":
        console.say(f"rollout {rollout.id} done: {summary}")
    elif rollout.status == "halted":
        console.say(f"rollout {rollout.id} HALTED ({len(failed)} failed, {args.max_failures} allowed): {summary}. "
                    f"Failed: {_names(failed)} (each was rolled back by its own upgrade unless it says otherwise; "
                    "`omldeploy history --tenant T` has the details). Tenants not started were not touched. "
                    "Fix the cause, then: omldeploy fleet upgrade --resume")
    else:
        console.say(f"rollout {rollout.id} ended with failures within the budget: {summary}. Failed: "
                    f"{_names(failed)}; `omldeploy fleet upgrade --resume` retries them")
    return code


def _what(release: str | None) -> str:
    return f"release {release}" if release else "the inventories' versions"


def _names(names: list[str], most: int = 12) -> str:
    return ", ".join(names[:most]) + (f" (+{len(names) - most} more)" if len(names) > most else "")


def _print_plan(console: Console, rollout: rollout_op.Rollout, *, resumed: bool) -> None:
    head = "resuming" if resumed else "rollout"
    sizes = ", ".join(str(len(w)) for w in rollout.waves) or "none"
    console.say(f"{head} {rollout.id}: {_what(rollout.release)}; {len(rollout.waves)} wave(s) of {sizes} "
                f"tenant(s) ({rollout.waves_spec})")
    rows = []
    for index, wave in enumerate(rollout.waves, 1):
        for name in wave:
            e = rollout.entries[name]
            rows.append((str(index), name, e.state, e.changes if e.state != "failed" else e.detail))
    for e in rollout.entries.values():
        if e.state in ("already", "unscheduled"):
            rows.append(("-", e.tenant, e.state, "not in --waves (add 'rest')" if e.state == "unscheduled"
                         else e.changes))
    for name, why in sorted(rollout.excluded.items()):
        rows.append(("-", name, "excluded", why))
    console.table(("wave", "tenant", "state", "changes"), rows)
