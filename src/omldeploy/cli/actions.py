"""The seed's actions (`deploy.sh --action=X`) as verbs, each implemented by an `ops` module."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from omldeploy import __version__
from omldeploy.cli import certs as certs_cli
from omldeploy.cli import context
from omldeploy.cli import dashboards as dashboards_cli
from omldeploy.cli import ha as ha_cli
from omldeploy.cli.output import Console
from omldeploy.inventory.schema import VERSION_KEYS
from omldeploy.ops import certs as certs_op
from omldeploy.ops import recycle as recycle_op
from omldeploy.ops import upgrade as upgrade_op
from omldeploy.ops.converge import Reporter, converge, status

# Every action the seed's deploy.sh accepts (seed and HEAD), with a one-line description.
SEED_ACTIONS: dict[str, str] = {
    "install": "install a tenant on its hosts",
    "upgrade": "apply the image versions of the inventory (also used for rollbacks)",
    "backup": "dump the database and Asterisk custom files to the tenant bucket",
    "restore": "restore a backup (restore_file_timestamp or --ts)",
    "app": "re-apply the web components (kamailio, websockets, daphne, django, cron, nginx)",
    "voice": "re-apply the voice components (asterisk, rtpengine)",
    "observability": "re-apply exporters, Prometheus, Loki, Promtail",
    "postgres": "re-apply PostgreSQL",
    "redis": "re-apply Redis (and Sentinel in HA)",
    "minio": "re-apply MinIO",
    "asterisk": "re-apply Asterisk",
    "kamailio": "re-apply Kamailio",
    "rtpengine": "re-apply RTPengine",
    "nginx": "re-apply nginx",
    "websockets": "re-apply websockets",
    "cron": "re-apply the cron component",
    "haproxy": "re-apply HAProxy (HA)",
    "keepalived": "re-apply keepalived (HA)",
    "sentinel": "re-apply Redis Sentinel (HA)",
    "pgsql_node_recovery_main": "HA: rejoin the former PostgreSQL main as a standby",
    "pgsql_node_takeover_main": "HA: give the primary role back to the PostgreSQL main node",
    "redis_node_takeover_main": "HA: give the Redis master role back to the main app node",
    "pgsql_node_recovery_backup": "HA: rejoin the PostgreSQL backup node as a standby",
    "restart": "restart the application stack (not PostgreSQL), then check every unit's health",
    "restart_django": "restart daphne, django and nginx",
    "restart_asterisk": "restart Asterisk",
    "restart_core": "restart Asterisk, daphne, django and nginx",
    "recycle": "remove exited containers and unused old image versions of the tenant",
    "update": "write changed files and pull images without restarting anything",
}
OWN_ACTIONS: dict[str, str] = {
    "rollback": "return to the versions of an earlier successful run",
    "status": "per host and component: unit state, image, health",
}

Handler = Callable[[argparse.Namespace], int]
HA_ACTIONS = ("pgsql_node_recovery_main", "pgsql_node_takeover_main", "redis_node_takeover_main",
              "pgsql_node_recovery_backup")
CONVERGING = ("install", "app", "voice", "observability", "postgres", "redis", "minio", "asterisk", "kamailio",
              "rtpengine", "nginx", "websockets", "cron", "haproxy", "keepalived", "sentinel",
              "restart", "restart_django", "restart_asterisk", "restart_core", "update", "recycle")


FORCE_HELP = ("restart Asterisk, Kamailio and RTPengine without waiting for the calls to end "
              "(default: wait up to voice_drain_timeout)")


def add_parsers(sub: Any) -> None:
    for name, help_text in {**SEED_ACTIONS, **OWN_ACTIONS}.items():
        p = sub.add_parser(name, help=help_text)
        context.add_tenant_arg(p)
        if name in CONVERGING:
            p.add_argument("--check", action="store_true",
                           help="show what would change on each host (diffs with secrets masked), change nothing")
            p.add_argument("--verbose", "-v", action="store_true", help="stream Ansible's own output")
            p.add_argument("--switchover", action="store_true",
                           help="HA: when the PostgreSQL primary or the Redis master must restart, hand its role "
                                "to the restarted standby/replica first instead of restarting it in place")
            if name != "recycle":
                p.add_argument("--force", action="store_true", help=FORCE_HELP)
            p.set_defaults(func=_converge(name))
            if name == "observability":
                dashboards_cli.add_subverb(p)
        elif name in ("backup", "restore") and _backups() is not None:
            mod = _backups()
            assert mod is not None
            mod.configure_action_parser(name, p)  # adds options and sets func
        elif name == "upgrade":
            p.add_argument("--release", help="take the seven image versions from this catalog release")
            p.add_argument("--no-backup", action="store_true", help="skip the pre-upgrade backup (said loudly)")
            p.add_argument("--no-rollback", action="store_true",
                           help="keep the failed state for debugging instead of rolling back")
            p.add_argument("--switchover", action="store_true",
                           help="HA: hand the PostgreSQL primary / Redis master role to the upgraded standby/replica "
                                "before the primary / master restarts")
            p.add_argument("--verbose", "-v", action="store_true", help="stream Ansible's own output")
            p.add_argument("--force", action="store_true", help=FORCE_HELP)
            p.set_defaults(func=_upgrade)
        elif name == "rollback":
            p.add_argument("--to", type=int, metavar="N", help="history entry to return to (see --list; default 2)")
            p.add_argument("--list", action="store_true", help="show the deployment history and exit")
            p.add_argument("--json", action="store_true", help="with --list: the history as JSON")
            p.add_argument("--with-data", action="store_true",
                           help="also restore the backup taken before the upgrade being undone")
            p.add_argument("--verbose", "-v", action="store_true", help="stream Ansible's own output")
            p.set_defaults(func=_rollback)
        elif name == "status":
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=_status)
        elif name in HA_ACTIONS:
            p.set_defaults(func=ha_cli.action(name))
        else:
            p.set_defaults(func=_unavailable(name))


def _backups() -> Any:
    """The backup/restore CLI module, when present (it registers `backup`, `restore`, `backups`)."""
    import importlib

    try:
        return importlib.import_module("omldeploy.cli.backups")
    except ModuleNotFoundError:
        return None


def _reporter(args: argparse.Namespace) -> Reporter:
    console = Console()
    return Reporter(say=console.say, warn=console.warn, verbose=bool(getattr(args, "verbose", False)))


def _converge(action: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        dashboards_cli.require_tenant(args)
        tenant = context.load_for_apply(args)
        if action == "recycle":
            return recycle_op.recycle(tenant, _reporter(args), check=bool(args.check))
        return converge(tenant, action, _reporter(args), check=bool(args.check),
                        restart=action.startswith("restart"), stage_only=action == "update",
                        switchover=bool(args.switchover), force=bool(args.force))

    return handler


def _upgrade(args: argparse.Namespace) -> int:
    tenant = context.load_for_apply(args)
    return upgrade_op.upgrade(tenant, _reporter(args), release=args.release, backup=not args.no_backup,
                              rollback=not args.no_rollback, switchover=bool(args.switchover),
                              force=bool(args.force))


def _rollback(args: argparse.Namespace) -> int:
    tenant = context.load(args) if args.list else context.load_for_apply(args)
    console = Console()
    if args.json and not args.list:
        console.error("--json goes with --list (a rollback itself prints progress, not JSON); nothing was done")
        return 2
    if args.list:
        entries = upgrade_op.history(tenant.folder)
        if args.json:
            console.json({"tenant": tenant.name, "history": [
                {"n": n, "deployed": r.started, "action": r.action, "user": r.user, "outcome": r.outcome,
                 "versions": {k: v for k, v in sorted(r.versions.items()) if k in VERSION_KEYS}}
                for n, r in entries]})
            return 0
        rows = [(str(n), r.started, r.action, r.versions.get("omnileads_version", "-"),
                 ", ".join(f"{k.removesuffix('_version')}={v}" for k, v in sorted(r.versions.items())
                           if k != "omnileads_version" and k in VERSION_KEYS))
                for n, r in entries]
        console.table(("#", "deployed", "by", "omlapp", "other versions"), rows, indent="")
        return 0
    return upgrade_op.rollback(tenant, _reporter(args), to=args.to, with_data=args.with_data)


def _status(args: argparse.Namespace) -> int:
    tenant = context.load(args)
    console = Console()
    code, data = status(tenant, _reporter(args))
    if tenant.layout.shape.value == "ha":
        from omldeploy.ops.ha_facts import one_line, read

        _, pairs = read(tenant)
        data["ha"] = {"summary": one_line(pairs), "pairs": [p.as_dict() for p in pairs]}
        if not all(p.ok for p in pairs):
            code, data["healthy"] = 1, False
    certificates = certs_op.describe(tenant)  # issue 12 M4: expiry shown where the operator looks
    data["certificates"] = [c.as_dict() for c in certificates]
    if any(c.days_left < 0 for c in certificates):
        code, data["healthy"] = 1, False
    if args.json:
        console.say(json.dumps(data, indent=2))
        return code
    for host, info in data["hosts"].items():
        if "error" in info:
            console.say(f"== {host}: {'UNREACHABLE' if info.get('unreachable') else 'ERROR'}: {info['error']}")
            continue
        console.say(f"== {host}")
        rows = [(u["unit"], u["state"] + ("" if u["enabled"] else " (standby)"), u["image"] or "-",
                 "yes" if u["healthy"] else "NO", _uptime(u.get("uptime")), u["detail"])
                for u in info["units"]]
        console.table(("unit", "state", "image", "healthy", "uptime", "check"), rows)
        if "prometheus" in info:
            _say_targets(console, info["prometheus"])
        for t in info.get("timers", []):
            last = t["last"] if t["last"] and t["last"] != "n/a" else "never"
            result = "running now" if t["running"] else (t["last_result"] or "-")
            line = f"   {t['timer']}: {t['state']}, next {t['next'] or '-'}, last run {last} ({result})"
            if t["state"] != "active" or (t["last_result"] not in ("", "success") and last != "never"):
                console.warn(line.strip() + f"; see journalctl -u {t['timer'].removesuffix('.timer')} on {host}")
            else:
                console.say(line)
    if "ha" in data:
        console.say(data["ha"]["summary"] + " (details: omldeploy ha status)")
    for c in certificates:
        line = f"certificate {c.role}: expires {c.not_after:%Y-%m-%d} ({c.days_left} days left)"
        if c.due:
            console.warn(f"{line}, {certs_cli.expiry_text(c.days_left)}: {certs_cli.renew_hint(c.role, tenant.name)}")
        else:
            console.say(line)
    console.say("all healthy" if code == 0 else "NOT healthy")
    return code


def _say_targets(console: Console, prom: dict[str, Any]) -> None:
    """`prometheus at 10.0.0.5:9090: 14 of 14 targets up`, or a warning naming the ones it cannot reach."""
    if "error" in prom:
        console.warn(f"   prometheus at {prom['address']}: targets not readable: {prom['error']}")
        return
    total = prom["up"] + len(prom["down"]) + prom["unknown"]
    line = f"   prometheus at {prom['address']}: {prom['up']} of {total} targets up"
    if prom["unknown"]:
        line += f", {prom['unknown']} not scraped yet"
    if prom["down"]:
        down = "; ".join(f"{d['host']} {d['component']} ({d['error'] or 'down'})" for d in prom["down"])
        console.warn(f"{line.strip()}; down: {down}")
    else:
        console.say(line)


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _unavailable(action: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        tenant = context.load(args)  # still report inventory problems first
        Console().error(f"action '{action}' is not available in omldeploy {__version__} yet; nothing was done "
                        f"on tenant {tenant.name}. Available now: validate, plan, render, releases, tenant, "
                        f"install, upgrade, rollback, backup, restore, status, restart*, update, recycle "
                        f"and the per-component actions.")
        return 3

    return handler
