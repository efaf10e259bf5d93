"""What an HA tenant looks like right now: facts from every HA host in one module call, and their
reading as pairs (PostgreSQL, Redis, each VIP, cron) with the action that would repair a degraded one.

`gather` is the only part that touches hosts; `summarize` is a pure function of the facts, so that
what `ha status` says and what the actions check before they change anything is one reading, tested
without hosts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omldeploy.apply.engine import Step, run_steps
from omldeploy.components.keepalived import COMPONENT as KEEPALIVED
from omldeploy.components.keepalived import STATE_DIR
from omldeploy.components.postgresql import FENCE_FILE
from omldeploy.inventory.model import Host, Tenant
from omldeploy.placement import Placement, place

#: the units whose state the HA reading needs (unit name = component name)
HA_UNITS = ("postgresql", "repmgr", "redis", "sentinel", "haproxy", "keepalived", "asterisk", "nginx", "omlcron")
#: replication lag above which an action refuses to move the primary role (bytes of WAL / replication)
LAG_LIMIT_BYTES = 16 * 1024 * 1024


class NotHA(ValueError):
    """The tenant has no HA layout: nothing here applies."""


def ha_hosts(tenant: Tenant) -> list[Host]:
    if tenant.layout.shape.value != "ha":
        raise NotHA(f"tenant {tenant.name} is not an HA layout ({tenant.layout.name}); the HA actions and "
                    "`ha status` apply to the HA layouts only")
    return [h for h in tenant.hosts if h.ha_role]


def facts_args(tenant: Tenant, placement: Placement, host: Host) -> dict[str, Any]:
    s = tenant.settings
    return {"tenant": tenant.name, "op": "facts", "lan": host.lan_ip,
            "units": [u for u in HA_UNITS if u in placement.components(host.name)],
            "state_dir": STATE_DIR, "fence_file": FENCE_FILE,
            "pg_user": s.text("postgres_user"), "pg_db": s.text("postgres_maintenance_db")}


def gather(tenant: Tenant, placement: Placement | None = None) -> dict[str, dict[str, Any]]:
    """host -> facts (or {"error": ..., "unreachable": bool}) for every HA host, in one module call."""
    placement = placement or place(tenant)
    hosts = ha_hosts(tenant)
    step = Step("facts", "omldeploy_ha", {h.name: facts_args(tenant, placement, h) for h in hosts}, fatal=False)
    result = run_steps(tenant, [step])
    out: dict[str, dict[str, Any]] = {}
    for h in hosts:
        r = result.hosts.get(h.name)
        if r is None or r.unreachable or r.error or "facts" not in r.reports:
            out[h.name] = {"error": (r.error if r else None) or "no answer", "unreachable": bool(r and r.unreachable)}
        else:
            out[h.name] = r.reports["facts"]
    return out


@dataclass
class Pair:
    """One replicated or floating role, as read from the facts."""

    name: str
    members: list[str]
    active: list[str] = field(default_factory=list)  # who holds the role now
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    repair: str | None = None  # the action (or command) that would repair it
    vip: str | None = None
    vip_holders: list[str] = field(default_factory=list)
    swapped: bool = False  # healthy, but the backup holds the role (main is the inventory's choice)

    def problem(self, text: str, repair: str | None = None) -> None:
        self.ok = False
        self.problems.append(text)
        if repair and not self.repair:
            self.repair = repair

    def as_dict(self) -> dict[str, Any]:
        return {"pair": self.name, "ok": self.ok, "members": self.members, "active": self.active,
                "vip": self.vip, "vip_holders": self.vip_holders, "problems": self.problems,
                "details": self.details, "repair": self.repair, "swapped": self.swapped}


def role_of(tenant: Tenant, host: str) -> str:
    return tenant.host(host).ha_role or "-"


def holders(facts: dict[str, dict[str, Any]], address: str | None, members: list[str]) -> list[str]:
    return [m for m in members if address and address in (facts.get(m, {}).get("addresses") or [])]


def pg_state(f: dict[str, Any]) -> str:
    """One word for a data node: unreachable, fenced, stopped, down, primary, standby."""
    if "error" in f:
        return "unreachable"
    pg = f.get("pg") or {}
    if pg.get("fenced"):
        return "fenced"
    if pg.get("unit") != "active":
        return "stopped"
    if not pg.get("answers"):
        return "down"
    return "standby" if pg.get("in_recovery") else "primary"


def postgres_pair(tenant: Tenant, facts: dict[str, dict[str, Any]]) -> Pair:
    members = [h.name for h in ha_hosts(tenant) if "data" in h.roles]
    pair = Pair("postgresql", members, vip=tenant.settings.text("postgres_host"))
    states = {m: pg_state(facts[m]) for m in members}
    main = next(m for m in members if role_of(tenant, m) == "main")
    backup = next(m for m in members if m != main)
    primaries = [m for m in members if states[m] == "primary"]
    pair.active = primaries
    pair.vip_holders = holders(facts, pair.vip, members)
    ro_vip = tenant.settings.text("postgres_ro_host")
    ro_holders = holders(facts, ro_vip, members)
    for m in members:
        pg = facts[m].get("pg") or {}
        line = f"{m} ({role_of(tenant, m)}): {states[m]}"
        if states[m] in ("primary", "standby"):
            line += f", timeline {pg.get('timeline')}, lsn {pg.get('lsn')}"
        if states[m] == "standby":
            rcv = pg.get("receiver") or {}
            line += f", receiver {rcv.get('status', 'none')}"
            if pg.get("replay_delay") is not None:
                line += f", last replay {float(pg['replay_delay']):.1f} s ago"
        for r in pg.get("replicas") or []:
            line += (f"; replica {r.get('addr')} {r.get('state')}, lag {r.get('lag_bytes')} bytes"
                     + (f" / {float(r['lag_seconds']):.2f} s" if r.get("lag_seconds") is not None else ""))
        if pg.get("fenced"):
            line += f"; FENCED: {pg['fenced'].get('reason', '?')}"
        if states[m] != "unreachable":
            line += f"; repmgrd {pg.get('repmgrd', '?')}"
        pair.details.append(line)
    pair.details.append(f"RW VIP {pair.vip}: {', '.join(pair.vip_holders) or 'nobody'}; "
                        f"RO VIP {ro_vip}: {', '.join(ro_holders) or 'nobody'}")
    for m in members:
        if states[m] == "unreachable":
            pair.problem(f"{m} is unreachable: {facts[m].get('error')}")
    if len(primaries) > 1:
        pair.problem("two writable primaries (split brain): stop the one on the older timeline, then run its "
                     "recovery action")
        return pair
    if not primaries:
        pair.problem("no primary: see `journalctl -u repmgr -u postgresql -u oml-pg-guard` on the data hosts")
        return pair
    primary = primaries[0]
    other = backup if primary == main else main
    action = "pgsql_node_recovery_main" if other == main else "pgsql_node_recovery_backup"
    pair.swapped = primary != main
    if states[other] in ("fenced", "stopped", "down"):
        pair.problem(f"{other} is {states[other]}: no standby", action)
    elif states[other] == "standby":
        streaming = [r for r in (facts[primary].get("pg") or {}).get("replicas") or []
                     if r.get("addr") == tenant.host(other).lan_ip and r.get("state") == "streaming"]
        if not streaming:
            pair.problem(f"{other} is a standby but does not stream from {primary}", action)
    if pair.vip_holders != [primary]:
        pair.problem(f"the RW VIP is on {', '.join(pair.vip_holders) or 'nobody'}, not on the primary {primary}")
    want_ro = [other] if states[other] == "standby" else [primary]
    if ro_holders != want_ro and states[other] == "standby":
        pair.problem(f"the RO VIP is on {', '.join(ro_holders) or 'nobody'}, not on the standby {other}")
    if pair.ok and pair.swapped:
        pair.repair = "pgsql_node_takeover_main"
    return pair


def redis_pair(tenant: Tenant, facts: dict[str, dict[str, Any]], placement: Placement) -> Pair | None:
    members = [h.name for h in ha_hosts(tenant) if "redis" in placement.components(h.name)]
    sentinels = [h.name for h in ha_hosts(tenant) if "sentinel" in placement.components(h.name)]
    if not sentinels:
        return None  # two-node: a standalone Redis per node, nothing replicated
    pair = Pair("redis", members)
    main = next(m for m in members if role_of(tenant, m) == "main")
    masters = [m for m in members if (facts[m].get("redis") or {}).get("role") == "master"]
    pair.active = masters
    for m in members:
        r = facts[m].get("redis") or {}
        if "error" in facts[m]:
            pair.problem(f"{m} is unreachable: {facts[m]['error']}")
            continue
        line = f"{m} ({role_of(tenant, m)}): {r.get('role') or r.get('unit')}"
        if r.get("role") == "slave":
            line += f" of {r.get('master_host')}, link {r.get('link')}, offset {r.get('offset')}"
        for rep in r.get("replicas") or []:
            line += f"; replica {rep.get('ip')} offset {rep.get('offset')} lag {rep.get('lag')} s"
        pair.details.append(line)
    views: dict[str, int] = {}
    for s in sentinels:
        v = facts[s].get("sentinel") or {}
        if v.get("master"):
            views[v["master"]] = views.get(v["master"], 0) + 1
            pair.details.append(f"sentinel on {s}: master {v['master']}, {v.get('replicas')} replica(s), "
                                f"{v.get('others')} other sentinel(s), flags {v.get('flags')}, epoch {v.get('epoch')}")
            if v.get("others") != len(sentinels) - 1:
                pair.problem(f"the sentinel on {s} sees {v.get('others')} other sentinels, not {len(sentinels) - 1}")
            for rep in v.get("replica_views") or []:
                flags = set(rep.get("flags", "").split(","))
                if rep.get("role-reported") == "master" and not flags & {"s_down", "o_down", "disconnected"}:
                    # omldeploy_ha.replica_views: a failover now would be turned back by this Sentinel
                    pair.problem(f"settling: the sentinel on {s} has not yet seen {rep.get('ip')} as a replica "
                                 "(its next poll is at most 10 s away)")
        else:
            pair.problem(f"the sentinel on {s} does not answer ({v.get('unit', 'unreachable')})")
    if len(masters) != 1:
        pair.problem(f"{len(masters)} Redis masters ({', '.join(masters) or 'none'})")
        return pair
    master = masters[0]
    ip = tenant.host(master).lan_ip
    if views and max(views, key=lambda k: views[k]) != ip:
        pair.problem(f"the sentinels name {max(views, key=lambda k: views[k])}, not {ip} ({master})")
    for m in members:
        r = facts[m].get("redis") or {}
        if m != master and "error" not in facts[m] and not (r.get("role") == "slave" and r.get("link") == "up"):
            pair.problem(f"{m} is not a replica in sync with {master} ({r.get('role') or r.get('unit')})")
    pair.swapped = master != main
    if pair.ok and pair.swapped:
        pair.repair = "redis_node_takeover_main"
    return pair


def vip_pairs(tenant: Tenant, facts: dict[str, dict[str, Any]], placement: Placement) -> list[Pair]:
    """Every keepalived instance with a VIP other than PostgreSQL's, and CRON: who is MASTER, who holds
    the VIP, and whether the service it follows runs on both members."""
    instances: dict[str, tuple[str | None, list[str]]] = {}
    for h in ha_hosts(tenant):
        if "keepalived" not in placement.components(h.name):
            continue
        for vi in KEEPALIVED.instances(placement.ctx(h)):
            if not vi.name.startswith("PG_"):
                instances.setdefault(vi.name, (vi.vip, []))[1].append(h.name)
    follows = {"VOICE": ("asterisk", "nginx") if tenant.layout.two_node else ("asterisk",),
               "HAPROXY": ("haproxy",), "CRON": ()}
    names = {"VOICE": "web+voice" if tenant.layout.two_node else "voice", "HAPROXY": "haproxy", "CRON": "cron"}
    out: list[Pair] = []
    order = ("VOICE", "HAPROXY", "CRON")
    for inst, (vip, members) in sorted(instances.items(), key=lambda kv: ((*order, kv[0])).index(kv[0])):
        pair = Pair(names.get(inst, inst.lower()), members, vip=vip)
        masters = [m for m in members if (facts[m].get("keepalived") or {}).get(inst) == "MASTER"]
        pair.active = masters
        pair.vip_holders = holders(facts, vip, members)
        main = next((m for m in members if role_of(tenant, m) == "main"), members[0])
        for m in members:
            f = facts[m]
            if "error" in f:
                pair.problem(f"{m} is unreachable: {f['error']}")
                continue
            units = f.get("units") or {}
            state = (f.get("keepalived") or {}).get(inst, "UNKNOWN")
            pair.details.append(f"{m} ({role_of(tenant, m)}): keepalived {units.get('keepalived')} {state}"
                                + "".join(f", {u} {units.get(u)}" for u in follows.get(inst, ()) if u in units))
            down = [u for u in ("keepalived", *follows.get(inst, ())) if u in units and units[u] != "active"]
            if down:
                pair.problem(f"{m}: {', '.join(down)} not active (no failover target while it is down)",
                             f"systemctl start {' '.join(down)} on {m}")
        if len(masters) != 1:
            pair.problem(f"keepalived {inst} is MASTER on {len(masters)} nodes ({', '.join(masters) or 'none'})")
        if vip and pair.vip_holders != masters:
            pair.problem(f"VIP {vip} held by {', '.join(pair.vip_holders) or 'nobody'}")
        if inst == "CRON" or (inst == "VOICE" and tenant.layout.two_node):  # where omlcron runs
            cron = [m for m in members if (facts[m].get("units") or {}).get("omlcron") == "active"]
            pair.details.append(f"omlcron runs on {', '.join(cron) or 'no node'}")
            if len(cron) != 1:
                pair.problem(f"omlcron runs on {len(cron)} nodes")
        pair.swapped = pair.ok and masters != [main]
        out.append(pair)
    return out


def summarize(tenant: Tenant, facts: dict[str, dict[str, Any]], placement: Placement | None = None) -> list[Pair]:
    placement = placement or place(tenant)
    pairs = [postgres_pair(tenant, facts)]
    redis = redis_pair(tenant, facts, placement)
    if redis:
        pairs.append(redis)
    return pairs + vip_pairs(tenant, facts, placement)


def read(tenant: Tenant, placement: Placement | None = None) -> tuple[dict[str, dict[str, Any]], list[Pair]]:
    """The cluster as it is now: the facts and their reading as pairs (one placement for both)."""
    placement = placement or place(tenant)
    facts = gather(tenant, placement)
    return facts, summarize(tenant, facts, placement)


def one_line(pairs: list[Pair]) -> str:
    """`omldeploy status`'s HA line: each pair ok or degraded, with who is active."""
    parts = []
    for p in pairs:
        who = "+".join(p.active) or "none"
        parts.append(f"{p.name} {'ok' if p.ok else 'DEGRADED'} ({who}{', swapped' if p.swapped else ''})")
    bad = [p for p in pairs if not p.ok]
    return "HA: " + "; ".join(parts) + (f" -> {bad[0].repair}" if bad and bad[0].repair else "")


def passive_first(tenant: Tenant) -> dict[str, str] | None:
    """Per activation tier of a running HA cluster, the pair member to restart first: the PostgreSQL
    standby (data), the node not holding the voice or HAProxy VIP, the Redis replica (app). None when
    the cluster cannot be read (a first install, an unreachable host): activation then goes main first."""
    try:
        facts = gather(tenant)
    except (OSError, ValueError):
        return None
    if any("error" in f for f in facts.values()):
        return None
    first: dict[str, str] = {}
    for h in ha_hosts(tenant):
        f = facts[h.name]
        if "data" in h.roles and (f.get("pg") or {}).get("in_recovery") is True:
            first["data"] = h.name
        states = f.get("keepalived") or {}
        for role, inst in (("voice", "VOICE"), ("haproxy", "HAPROXY")):
            if role in h.roles and states.get(inst) in ("BACKUP", "FAULT"):
                first.setdefault(role, h.name)
        if "app" in h.roles and (f.get("redis") or {}).get("role") == "slave":
            first["app"] = h.name
    return first or None
