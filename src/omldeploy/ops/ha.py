"""The seed's HA node actions, done safely (actions.md §11; weaknesses 27-29).

The seed's takeover stopped the standby-to-be and cloned at once without waiting for a promotion, its
recovery cloned with `-F` over a running PostgreSQL, and its Redis takeover forced a Sentinel failover
blindly. Here every action:
  1. reads the cluster (ha_facts.gather) and refuses, changing nothing, unless the state is the one the
     action is for; the refusal names the fix. An action whose end state already holds does nothing;
  2. performs its steps one host module call at a time, each waiting on the fact that proves it
     (promotion seen in `pg_is_in_recovery()` and in repmgr, the standby streaming, Sentinel's answer);
  3. waits until the whole pair reads healthy again (VIPs on the right nodes included) before it
     reports success, and writes what it did with timings into the ledger.
A recovery keeps the replaced data directory until the new standby streams (see omldeploy_ha.pg_rejoin).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omldeploy.apply.engine import Step, run_steps
from omldeploy.components.postgresql import FENCE_FILE, REPMGR_ARGV, clone_argv
from omldeploy.inventory.model import Host, Tenant
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.ops.ha_facts import LAG_LIMIT_BYTES, Pair, ha_hosts, pg_state, read
from omldeploy.placement import Placement, place
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from omldeploy.state.runlog import RunLog

ACTIONS = ("pgsql_node_recovery_main", "pgsql_node_recovery_backup", "pgsql_node_takeover_main",
           "redis_node_takeover_main")
SETTLE_SECONDS = 120.0


class Refused(Exception):
    """The cluster is not in the state the action is for; nothing was changed."""


class Done(Exception):
    """The action's end state already holds; nothing to do."""


class Failed(Exception):
    """A step did not reach its fact; the message says where the cluster stands."""


@dataclass
class Run:
    """One action in progress: where it writes, and the steps it took (for the ledger)."""

    tenant: Tenant
    reporter: Reporter
    placement: Placement
    steps: list[dict[str, Any]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        self.reporter.line(f"[{time.monotonic() - self.t0:6.1f}s] {text}")

    def call(self, host: Host, name: str, op: str, **args: Any) -> dict[str, Any]:
        """One host module call; its report, or Failed with the host's words."""
        t0 = time.monotonic()
        self.say(f"{host.name}: {name} ...")
        result = run_steps(self.tenant, [Step(name, "omldeploy_ha", {host.name: {
            "tenant": self.tenant.name, "op": op, "lan": host.lan_ip, "fence_file": FENCE_FILE,
            "pg_user": self.tenant.settings.text("postgres_user"),
            "pg_db": self.tenant.settings.text("postgres_maintenance_db"), **args}})])
        r = result.hosts[host.name]
        took = round(time.monotonic() - t0, 1)
        self.steps.append({"host": host.name, "step": name, "seconds": took, "ok": result.ok,
                           **({"detail": r.reports[name].get("steps")} if name in r.reports else {})})
        if not result.ok:
            raise Failed(f"{host.name}: {name} failed: {r.error or result.aborted or 'no answer'}")
        self.say(f"{host.name}: {name} done ({took:.1f} s)")
        return r.reports.get(name) or {}

    def read(self) -> tuple[dict[str, dict[str, Any]], list[Pair]]:
        return read(self.tenant, self.placement)


def _pair(pairs: list[Pair], name: str) -> Pair:
    return next(p for p in pairs if p.name == name)


def _data_nodes(tenant: Tenant) -> tuple[Host, Host]:
    data = [h for h in ha_hosts(tenant) if "data" in h.roles]
    main = next(h for h in data if h.ha_role == "main")
    return main, next(h for h in data if h is not main)


def _reachable(facts: dict[str, dict[str, Any]], hosts: list[Host]) -> None:
    for h in hosts:
        if "error" in facts[h.name]:
            raise Refused(f"{h.name} is unreachable ({facts[h.name]['error']}); nothing was changed. Bring the "
                          "host back (or fix SSH), then run the action again")


def _settle(run: Run, name: str, want: Callable[[list[Pair]], bool], what: str) -> list[Pair]:
    """Read the cluster until `want` holds (bounded): the end state is verified, not assumed."""
    end = time.monotonic() + SETTLE_SECONDS
    t0 = time.monotonic()
    while True:
        _, pairs = run.read()
        if want(pairs):
            run.steps.append({"step": f"verified: {what}", "seconds": round(time.monotonic() - t0, 1), "ok": True})
            run.say(f"verified: {what}")
            return pairs
        if time.monotonic() > end:
            p = _pair(pairs, name)
            raise Failed(f"not verified after {SETTLE_SECONDS:.0f} s: {what}; now: {'; '.join(p.problems)}")
        time.sleep(1.0)


def _rejoin(run: Run, node: Host, source: Host) -> None:
    run.call(node, "rejoin", "pg_rejoin", source=source.lan_ip, node_name=node.name,
             clone_argv=clone_argv(run.placement.ctx(node), source.lan_ip),
             register_argv=[*REPMGR_ARGV, "standby", "register", "-F"], timeout=180.0)


def pgsql_recovery(run: Run, which: str) -> None:
    """Rejoin `which` (main|backup) as a fresh standby of the other node, which must be the primary."""
    main, backup = _data_nodes(run.tenant)
    node, other = (main, backup) if which == "main" else (backup, main)
    facts, pairs = run.read()
    _reachable(facts, [node, other])
    state, other_state = pg_state(facts[node.name]), pg_state(facts[other.name])
    pg = _pair(pairs, "postgresql")
    if state == "primary":
        hint = ("pgsql_node_recovery_backup" if which == "main" else "pgsql_node_recovery_main") \
            if other_state != "primary" else "stop the node on the older timeline first"
        raise Refused(f"{node.name} ({which}) is still a writable primary: rejoining it would throw its data "
                      f"away. Nothing was changed. The node to rejoin is the one that is not primary ({hint})")
    if other_state != "primary":
        raise Refused(f"{other.name} is {other_state}, not primary: there is nothing to rejoin {node.name} to. "
                      "Nothing was changed. Bring a primary up first (see `omldeploy ha status`)")
    if pg.ok and state == "standby":
        raise Done(f"{node.name} already streams from the primary {other.name}")
    run.say(f"{node.name} ({which}) is {state}; {other.name} is primary: rejoining {node.name} as its standby")
    _rejoin(run, node, other)
    _settle(run, "postgresql", lambda ps: _pair(ps, "postgresql").ok,
            f"{node.name} streams from {other.name}, RW VIP on {other.name}, RO VIP on {node.name}")


def pgsql_takeover(run: Run) -> None:
    """Give the primary role back to main: main must be a standby streaming from the backup, caught up."""
    main, backup = _data_nodes(run.tenant)
    facts, pairs = run.read()
    _reachable(facts, [main, backup])
    ms, bs = pg_state(facts[main.name]), pg_state(facts[backup.name])
    pg = _pair(pairs, "postgresql")
    if ms == "primary" and bs == "standby" and pg.ok:
        raise Done(f"{main.name} (main) is already the primary, {backup.name} streams from it")
    if ms == "primary":
        raise Refused(f"{main.name} (main) is already primary but the pair is degraded ({'; '.join(pg.problems)}); "
                      f"nothing was changed. Run {pg.repair or 'pgsql_node_recovery_backup'} instead")
    if bs != "primary":
        raise Refused(f"{backup.name} (backup) is {bs}, not primary; nothing was changed. See `omldeploy ha status`")
    if ms != "standby":
        raise Refused(f"{main.name} (main) is {ms}, not a standby of {backup.name}; nothing was changed. "
                      "Run pgsql_node_recovery_main first, then this action")
    replica = next((r for r in (facts[backup.name].get("pg") or {}).get("replicas") or []
                    if r.get("addr") == main.lan_ip), None)
    if not replica or replica.get("state") != "streaming":
        raise Refused(f"{main.name} (main) does not stream from {backup.name}; nothing was changed. "
                      "Run pgsql_node_recovery_main first")
    lag = int(replica.get("lag_bytes") or 0)
    if lag > LAG_LIMIT_BYTES:
        raise Refused(f"{main.name} lags {lag} bytes behind {backup.name} (limit {LAG_LIMIT_BYTES}); nothing was "
                      "changed. Wait until it has caught up (`omldeploy ha status`) and run the action again")
    run.say(f"{backup.name} is primary, {main.name} streams from it (lag {lag} bytes): handing the role to main")
    pgsql_switch(run, main, backup, (facts[backup.name].get("pg") or {}).get("lsn"))


def pgsql_switch(run: Run, new: Host, old: Host, final: str | None) -> None:
    """Make `new` (a caught-up streaming standby) the primary and `old` (the primary) its standby:
    pause new's repmgrd (it would promote on its own once old stops), stop old cleanly (its last WAL
    reaches new), promote new once it replayed `final`, resume repmgrd, rejoin old. A failed promotion
    starts old again as the primary it was."""
    run.call(new, "pause", "units", stop=["repmgr"])
    run.call(old, "stop", "pg_stop")
    try:
        run.call(new, "promote", "pg_promote", node_name=new.name, min_lsn=final or "",
                 promote_argv=[*REPMGR_ARGV, "standby", "promote"], timeout=120.0)
    except Failed as exc:
        # put the cluster back as it was: old was stopped cleanly and new was not promoted
        run.say(f"promotion failed: restarting {old.name} as the primary it was")
        run.call(old, "restore", "units", start=["postgresql", "repmgr"])
        run.call(new, "resume", "units", start=["repmgr"])
        raise Failed(f"{exc}; the cluster was put back as found ({old.name} primary)") from exc
    run.call(new, "resume", "units", start=["repmgr"])
    _rejoin(run, old, new)
    _settle(run, "postgresql", lambda ps: _pair(ps, "postgresql").ok and _pair(ps, "postgresql").active == [new.name],
            f"{new.name} primary with the RW VIP, {old.name} streams from it with the RO VIP")


def pgsql_switchover(run: Run, new: Host) -> None:
    """`--switchover` of a rolling run: the standby `new` takes the primary role before the primary
    restarts. Checked like a takeover (healthy pair, lag under the limit); refused otherwise."""
    facts, pairs = run.read()
    pg = _pair(pairs, "postgresql")
    if not pg.ok or len(pg.active) != 1 or pg.active[0] == new.name:
        raise Refused(f"no switchover to {new.name}: the PostgreSQL pair is not a healthy pair with {new.name} as "
                      f"its standby ({'; '.join(pg.problems) or 'it is the primary'})")
    old = run.tenant.host(pg.active[0])
    replica = next((r for r in (facts[old.name].get("pg") or {}).get("replicas") or []
                    if r.get("addr") == new.lan_ip and r.get("state") == "streaming"), None)
    lag = int((replica or {}).get("lag_bytes") or 0)
    if replica is None or lag > LAG_LIMIT_BYTES:
        raise Refused(f"no switchover to {new.name}: it does not stream from {old.name} with a lag under "
                      f"{LAG_LIMIT_BYTES} bytes")
    run.say(f"switchover: {new.name} takes the primary role from {old.name} before {old.name} restarts")
    pgsql_switch(run, new, old, (facts[old.name].get("pg") or {}).get("lsn"))


def redis_takeover(run: Run) -> None:
    """Give the Redis master role back to the main app node, through Sentinel, once it is in sync."""
    if run.tenant.layout.two_node:
        raise Refused("two-node HA runs one standalone Redis per node (refilled from the database on the node "
                      "that takes the VIP): there is no Redis master role to take over. Nothing was changed")
    app = [h for h in ha_hosts(run.tenant) if "redis" in run.placement.components(h.name)]
    main = next(h for h in app if h.ha_role == "main")
    sentinels = [h for h in ha_hosts(run.tenant) if "sentinel" in run.placement.components(h.name)]
    facts, pairs = run.read()
    _reachable(facts, app)
    rp = _pair(pairs, "redis")
    if rp.ok and rp.active == [main.name]:
        raise Done(f"{main.name} (main) is already the Redis master, with its replica in sync")
    if not rp.ok:
        raise Refused(f"the Redis pair is degraded ({'; '.join(rp.problems)}); nothing was changed. A takeover "
                      "needs one master and main as its replica in sync")
    r = facts[main.name].get("redis") or {}
    master = facts[rp.active[0]].get("redis") or {}
    lag = int(master.get("offset") or 0) - int(r.get("offset") or 0)
    if lag > LAG_LIMIT_BYTES:
        raise Refused(f"{main.name} lags {lag} bytes behind the master; nothing was changed. Run it again later")
    asker = next((s for s in sentinels if "error" not in facts[s.name]
                  and (facts[s.name].get("sentinel") or {}).get("master")), None)
    if asker is None:
        raise Refused("no Sentinel answers; nothing was changed")
    run.say(f"{rp.active[0]} is master, {main.name} its replica in sync: Sentinel failover to {main.name}")
    redis_switch(run, asker, main)


def redis_switch(run: Run, asker: Host, new: Host) -> None:
    """Sentinel's failover to the replica `new` (the pair has one), verified from every side."""
    run.call(asker, "failover", "sentinel_failover", expect=new.lan_ip, timeout=60.0)
    _settle(run, "redis", lambda ps: _pair(ps, "redis").ok and _pair(ps, "redis").active == [new.name],
            f"{new.name} master, the other node its replica, every sentinel agrees")


def redis_switchover(run: Run, new: Host) -> None:
    """`--switchover` of a rolling run: the replica `new` becomes master before the master's node restarts."""
    facts, pairs = run.read()
    rp = _pair(pairs, "redis")
    if not rp.ok or rp.active == [new.name]:
        raise Refused(f"no Redis switchover to {new.name}: the pair is not healthy with {new.name} as its "
                      f"replica ({'; '.join(rp.problems) or 'it is the master'})")
    asker = next(h for h in ha_hosts(run.tenant) if "sentinel" in run.placement.components(h.name)
                 and (facts[h.name].get("sentinel") or {}).get("master"))
    run.say(f"switchover: {new.name} becomes the Redis master before {rp.active[0]} restarts")
    redis_switch(run, asker, new)


def _warn(reporter: Reporter, text: str) -> None:
    text = reporter.redact(text)
    reporter.warn(text)
    if reporter.log:
        reporter.log.write(text)


def run_action(tenant: Tenant, action: str, reporter: Reporter) -> int:
    """0 done (or nothing to do), 1 refused or failed, 2 not an HA tenant."""
    try:
        ha_hosts(tenant)
    except ValueError as exc:
        reporter.warn(f"{exc}; nothing was done")
        return 2
    reporter.redact = redactor(tenant)
    started = ledger.now()
    run = Run(tenant, reporter, place(tenant))
    with tenant_lock(tenant.folder, tenant.name, action):
        reporter.log = RunLog(tenant.folder, action, reporter.redact)
        outcome, detail, code = "ok", "", 0
        try:
            reporter.line(f"{action} on tenant {tenant.name}")
            if action == "pgsql_node_recovery_main":
                pgsql_recovery(run, "main")
            elif action == "pgsql_node_recovery_backup":
                pgsql_recovery(run, "backup")
            elif action == "pgsql_node_takeover_main":
                pgsql_takeover(run)
            else:
                redis_takeover(run)
            detail = f"done in {time.monotonic() - run.t0:.1f} s"
            reporter.line(f"{action}: {detail}")
        except Done as exc:
            outcome, detail = "ok", f"nothing to do: {exc}"
            reporter.line(f"{action}: {detail}")
        except Refused as exc:
            outcome, detail, code = "refused", str(exc), 1
            _warn(reporter, f"{action} REFUSED: {exc}")
        except Failed as exc:
            outcome, detail, code = "failed", str(exc), 1
            _warn(reporter, f"{action} FAILED: {exc}. Re-running the same action finishes or repeats it safely; "
                          "`omldeploy ha status` shows where the cluster stands")
        finally:
            ledger.append(tenant.folder, ledger.Record(
                action=action, outcome=outcome, started=started, duration=round(time.monotonic() - run.t0, 1),
                versions=dict(tenant.versions), hosts=sorted({s["host"] for s in run.steps if "host" in s}),
                detail=detail, extra={"steps": run.steps}), redact=reporter.redact)
            if reporter.log:
                reporter.line(f"log: {reporter.log.path}")
                reporter.log.close()
            reporter.log = None
        return code
