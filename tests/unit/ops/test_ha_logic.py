"""How `ha status` reads an HA cluster, and what each HA action decides from that reading, without hosts.

The facts are shaped like omldeploy_ha's `facts` report; the actions run against a Run whose reads and
host calls are recorded, so a refusal is proven to have called no host at all.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from omldeploy.components.keepalived import COMPONENT as KEEPALIVED
from omldeploy.inventory import Tenant
from omldeploy.ops import ha
from omldeploy.ops.converge import Reporter
from omldeploy.ops.ha_facts import HA_UNITS, one_line, summarize
from omldeploy.placement import Placement, place
from tests.unit.conftest import MakeTenant

Facts = dict[str, dict[str, Any]]


def pg(primary: bool, replicas: list[dict[str, Any]] | None = None, lsn: str = "0/5000000") -> dict[str, Any]:
    return {"unit": "active", "repmgrd": "active", "guard": "active", "fenced": None, "answers": True,
            "in_recovery": not primary, "timeline": 1, "lsn": lsn, "replicas": replicas or [],
            "receiver": None if primary else {"status": "streaming", "sender": "x"}}


def healthy(t: Tenant, placement: Placement, *, pg_primary: str = "main", redis_master: str = "main") -> Facts:
    """Every HA host as right after a clean install (or with the roles swapped where asked)."""
    s = t.settings
    facts: Facts = {}
    for h in t.hosts:
        if not h.ha_role:
            continue
        comps = placement.components(h.name)
        f: dict[str, Any] = {"addresses": [h.lan_ip], "units": {u: "active" for u in HA_UNITS if u in comps},
                             "keepalived": {}}
        if "omlcron" in comps and h.ha_role != "main":
            f["units"]["omlcron"] = "inactive"
        for vi in KEEPALIVED.instances(placement.ctx(h)):
            if vi.name.startswith("PG_"):
                continue
            f["keepalived"][vi.name] = "MASTER" if h.ha_role == "main" else "BACKUP"
            if vi.vip and h.ha_role == "main":
                f["addresses"].append(vi.vip)
        if "postgresql" in comps:
            is_primary = h.ha_role == pg_primary
            peer = next(o for o in t.hosts if "data" in o.roles and o.name != h.name)
            f["pg"] = pg(is_primary, [{"addr": peer.lan_ip, "state": "streaming", "lag_bytes": 0,
                                       "lag_seconds": 0.001}] if is_primary else [])
            f["addresses"].append(s.text("postgres_host") if is_primary else s.text("postgres_ro_host"))
        if "redis" in comps:
            master = next(o for o in t.hosts if "redis" in placement.components(o.name) and o.ha_role == redis_master)
            f["redis"] = ({"unit": "active", "role": "master", "offset": 1000, "replicas": [{"ip": "x", "lag": "0"}]}
                          if h is master else
                          {"unit": "active", "role": "slave", "master_host": master.lan_ip, "link": "up",
                           "offset": 1000})
        if "sentinel" in comps:
            n = sum(1 for o in t.hosts if "sentinel" in placement.components(o.name))
            master = next(o for o in t.hosts if "redis" in placement.components(o.name) and o.ha_role == redis_master)
            replica = next(o for o in t.hosts if "redis" in placement.components(o.name) and o is not master)
            f["sentinel"] = {"unit": "active", "master": master.lan_ip, "replicas": 1, "others": n - 1,
                             "flags": "master", "epoch": 0,
                             "replica_views": [{"ip": replica.lan_ip, "flags": "slave", "role-reported": "slave"}]}
        facts[h.name] = f
    return facts


@pytest.fixture
def ha8(make_tenant: MakeTenant) -> tuple[Tenant, Placement]:
    t = make_tenant("ha")
    return t, place(t)


def data_nodes(t: Tenant) -> tuple[str, str]:
    data = [h for h in t.hosts if "data" in h.roles]
    return next(h.name for h in data if h.ha_role == "main"), next(h.name for h in data if h.ha_role == "backup")


def fence(facts: Facts, node: str) -> None:
    facts[node]["pg"] = {"unit": "inactive", "repmgrd": "inactive", "guard": "active",
                         "fenced": {"reason": "peer is primary on timeline 2"}}


def promote_backup(t: Tenant, facts: Facts) -> None:
    """After a failover of the primary: backup primary with both VIPs, main fenced."""
    main, backup = data_nodes(t)
    s = t.settings
    fence(facts, main)
    facts[main]["addresses"] = [t.host(main).lan_ip]
    facts[backup]["pg"] = pg(True)
    facts[backup]["addresses"] = [t.host(backup).lan_ip, s.text("postgres_host"), s.text("postgres_ro_host")]


def test_a_clean_install_reads_healthy(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    pairs = summarize(t, healthy(t, placement), placement)
    assert [p.name for p in pairs] == ["postgresql", "redis", "voice", "haproxy", "cron"]
    assert all(p.ok and not p.swapped and p.repair is None for p in pairs), [p.problems for p in pairs]
    assert "DEGRADED" not in one_line(pairs)


def test_a_fenced_main_names_its_recovery(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    facts = healthy(t, placement)
    promote_backup(t, facts)
    pgp = summarize(t, facts, placement)[0]
    assert not pgp.ok and pgp.repair == "pgsql_node_recovery_main"
    assert any("FENCED" in d for d in pgp.details)
    assert one_line(summarize(t, facts, placement)).endswith("-> pgsql_node_recovery_main")


def test_a_swapped_but_healthy_pair_suggests_the_takeover(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    pairs = summarize(t, healthy(t, placement, pg_primary="backup", redis_master="backup"), placement)
    assert pairs[0].ok and pairs[0].swapped and pairs[0].repair == "pgsql_node_takeover_main"
    assert pairs[1].ok and pairs[1].swapped and pairs[1].repair == "redis_node_takeover_main"


def test_two_primaries_and_a_wandering_vip_are_degraded(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    facts = healthy(t, placement)
    _, backup = data_nodes(t)
    facts[backup]["pg"] = pg(True)
    assert "split brain" in " ".join(summarize(t, facts, placement)[0].problems)
    facts = healthy(t, placement)
    facts[backup]["addresses"].append(t.settings.text("postgres_host"))
    assert "RW VIP" in " ".join(summarize(t, facts, placement)[0].problems)


def test_redis_cron_and_unreachable_hosts(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    facts = healthy(t, placement)
    app = [h.name for h in t.hosts if "redis" in placement.components(h.name)]
    for a in app:
        facts[a]["redis"] = {"unit": "active", "role": "master", "offset": 5}
        facts[a]["units"]["omlcron"] = "active"
    pairs = {p.name: p for p in summarize(t, facts, placement)}
    assert not pairs["redis"].ok and "2 Redis masters" in pairs["redis"].problems[0]
    assert not pairs["cron"].ok and "omlcron runs on 2 nodes" in pairs["cron"].problems
    facts = healthy(t, placement)
    voice = next(h.name for h in t.hosts if "voice" in h.roles and h.ha_role == "backup")
    facts[voice] = {"error": "ssh: connect timed out", "unreachable": True}
    pairs = {p.name: p for p in summarize(t, facts, placement)}
    assert not pairs["voice"].ok and "unreachable" in pairs["voice"].problems[0]


def test_redis_reads_settling_until_every_sentinel_has_polled_the_demoted_node(ha8: tuple[Tenant, Placement]) -> None:
    """Right after a failover a Sentinel may still hold the demoted node's last reported role, `master`
    (it polls replicas every 10 s): a failover then is turned back by that Sentinel and retried 12 s
    later, so takeovers and drills wait until the pair reads settled (CI measured 17 s instead of 5)."""
    t, placement = ha8
    facts = healthy(t, placement)
    sentinel = next(h.name for h in t.hosts if "sentinel" in placement.components(h.name))
    view = facts[sentinel]["sentinel"]["replica_views"][0]
    view["role-reported"] = "master"
    redis = {p.name: p for p in summarize(t, facts, placement)}["redis"]
    assert not redis.ok
    assert redis.problems == [f"settling: the sentinel on {sentinel} has not yet seen {view['ip']} as a replica "
                              "(its next poll is at most 10 s away)"]
    view["flags"] = "s_down,slave,disconnected"  # a dead node's last role is no news; other checks name it
    assert {p.name: p for p in summarize(t, facts, placement)}["redis"].ok


def test_two_node_reads_one_web_voice_pair_and_no_redis_pair(make_tenant: MakeTenant) -> None:
    t = make_tenant("ha_aio")
    placement = place(t)
    pairs = summarize(t, healthy(t, placement), placement)
    assert [p.name for p in pairs] == ["postgresql", "web+voice"]
    assert all(p.ok for p in pairs), [p.problems for p in pairs]
    facts = healthy(t, placement)
    main = next(h.name for h in t.hosts if h.ha_role == "main")
    facts[main]["units"]["nginx"] = "failed"
    web = summarize(t, facts, placement)[1]
    assert not web.ok and web.repair == f"systemctl start nginx on {main}"


class FakeRun(ha.Run):
    """Reads come from a list of fact snapshots (the last one repeats); host calls are recorded."""

    def __init__(self, t: Tenant, placement: Placement, snapshots: list[Facts]) -> None:
        super().__init__(t, Reporter(say=lambda _: None, warn=lambda _: None), placement)
        self.snapshots = snapshots
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def read(self) -> tuple[Facts, list[ha.Pair]]:
        facts = self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]
        return facts, summarize(self.tenant, facts, self.placement)

    def call(self, host: Any, name: str, op: str, **args: Any) -> dict[str, Any]:
        self.calls.append((host.name, op, args))
        return {}


def test_recovery_refuses_on_the_wrong_state_and_calls_no_host(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    main, backup = data_nodes(t)
    run = FakeRun(t, placement, [healthy(t, placement)])
    with pytest.raises(ha.Refused, match="still a writable primary"):
        ha.pgsql_recovery(run, "main")  # main is the primary: rejoining it would lose its data
    facts = healthy(t, placement)
    fence(facts, main)
    fence(facts, backup)
    run = FakeRun(t, placement, [facts])
    with pytest.raises(ha.Refused, match="not primary"):
        ha.pgsql_recovery(run, "main")  # nobody to clone from
    facts = healthy(t, placement)
    facts[backup] = {"error": "unreachable", "unreachable": True}
    run = FakeRun(t, placement, [facts])
    with pytest.raises(ha.Refused, match="unreachable"):
        ha.pgsql_recovery(run, "backup")
    assert run.calls == []


def test_recovery_of_a_fenced_main_rejoins_it_from_the_backup(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    main, backup = data_nodes(t)
    before = healthy(t, placement)
    promote_backup(t, before)
    after = healthy(t, placement, pg_primary="backup")
    run = FakeRun(t, placement, [before, after])
    ha.pgsql_recovery(run, "main")
    assert [(h, op) for h, op, _ in run.calls] == [(main, "pg_rejoin")]
    args = run.calls[0][2]
    assert args["source"] == t.host(backup).lan_ip and t.host(backup).lan_ip in args["clone_argv"]
    assert args["register_argv"][-3:] == ["standby", "register", "-F"]
    with pytest.raises(ha.Done):
        ha.pgsql_recovery(FakeRun(t, placement, [after]), "main")  # a re-run finds nothing to do


def test_takeover_stops_the_backup_only_after_checks_then_promotes_and_rejoins(
        ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    main, backup = data_nodes(t)
    swapped = healthy(t, placement, pg_primary="backup")
    run = FakeRun(t, placement, [swapped, healthy(t, placement)])
    ha.pgsql_takeover(run)
    assert [(h, op) for h, op, _ in run.calls] == [
        (main, "units"), (backup, "pg_stop"), (main, "pg_promote"), (main, "units"), (backup, "pg_rejoin")]
    assert run.calls[0][2] == {"stop": ["repmgr"]} and run.calls[3][2] == {"start": ["repmgr"]}
    assert run.calls[2][2]["min_lsn"] == "0/5000000"
    lagging = copy.deepcopy(swapped)
    lagging[backup]["pg"]["replicas"][0]["lag_bytes"] = 10**9
    run = FakeRun(t, placement, [lagging])
    with pytest.raises(ha.Refused, match="lags"):
        ha.pgsql_takeover(run)
    fenced = healthy(t, placement)
    promote_backup(t, fenced)
    run = FakeRun(t, placement, [fenced])
    with pytest.raises(ha.Refused, match="pgsql_node_recovery_main first"):
        ha.pgsql_takeover(run)
    assert run.calls == []
    with pytest.raises(ha.Done):
        ha.pgsql_takeover(FakeRun(t, placement, [healthy(t, placement)]))


def test_a_failed_promotion_puts_the_backup_back(ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    main, backup = data_nodes(t)

    class Failing(FakeRun):
        def call(self, host: Any, name: str, op: str, **args: Any) -> dict[str, Any]:
            super().call(host, name, op, **args)
            if op == "pg_promote":
                raise ha.Failed("promote failed")
            return {}

    run = Failing(t, placement, [healthy(t, placement, pg_primary="backup")])
    with pytest.raises(ha.Failed, match="put back as found"):
        ha.pgsql_takeover(run)
    assert [(h, op, a.get("start")) for h, op, a in run.calls[-2:]] == [
        (backup, "units", ["postgresql", "repmgr"]), (main, "units", ["repmgr"])]


def test_redis_takeover(ha8: tuple[Tenant, Placement], make_tenant: MakeTenant) -> None:
    t, placement = ha8
    run = FakeRun(t, placement, [healthy(t, placement, redis_master="backup"), healthy(t, placement)])
    ha.redis_takeover(run)
    main_app = next(h for h in t.hosts if "redis" in placement.components(h.name) and h.ha_role == "main")
    assert [(op, a["expect"]) for _, op, a in run.calls] == [("sentinel_failover", main_app.lan_ip)]
    with pytest.raises(ha.Done):
        ha.redis_takeover(FakeRun(t, placement, [healthy(t, placement)]))
    two = make_tenant("ha_aio", name="two")
    with pytest.raises(ha.Refused, match="standalone Redis"):
        ha.redis_takeover(FakeRun(two, place(two), [{}]))


def test_the_passive_side_of_each_pair_goes_first(ha8: tuple[Tenant, Placement],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from omldeploy.ops import ha_facts

    t, placement = ha8
    main, backup = data_nodes(t)
    facts = healthy(t, placement, pg_primary="backup")
    monkeypatch.setattr(ha_facts, "gather", lambda tenant, placement=None: facts)
    first = ha_facts.passive_first(t)
    assert first is not None and first["data"] == main  # main is the standby now
    assert first["voice"] == next(h.name for h in t.hosts if "voice" in h.roles and h.ha_role == "backup")
    assert first["app"] == next(h.name for h in t.hosts if "app" in h.roles and h.ha_role == "backup")
    facts[backup] = {"error": "unreachable", "unreachable": True}
    assert ha_facts.passive_first(t) is None  # cannot read the cluster: main first, as on a first install


def test_a_switchover_follows_the_passive_side_when_its_active_peer_must_restart(
        ha8: tuple[Tenant, Placement], make_tenant: MakeTenant) -> None:
    from omldeploy.ops.converge import _switches

    t, _ = ha8
    first = {"data": "sql_2", "voice": "voice_2", "app": "app_2"}
    assert _switches(t, first, {"sql_1": {"postgresql", "repmgr"}, "sql_2": {"postgresql"}}) == {"sql_2": "postgresql"}
    assert _switches(t, first, {"app_1": {"redis", "nginx"}}) == {"app_2": "redis"}
    assert _switches(t, first, {"sql_2": {"postgresql"}, "app_1": {"nginx"}}) == {}  # only the passive side restarts
    two = make_tenant("ha_aio", name="two")
    main, backup = (next(h.name for h in two.hosts if h.ha_role == r) for r in ("main", "backup"))
    assert _switches(two, {"data": backup, "app": backup}, {main: {"postgresql", "redis"}}) == {backup: "postgresql"}


def test_the_primary_restarts_with_the_standbys_repmgrd_held_or_after_a_switchover(
        ha8: tuple[Tenant, Placement], monkeypatch: pytest.MonkeyPatch) -> None:
    from omldeploy.apply.engine import HostResult, RunResult
    from omldeploy.ops import converge
    from omldeploy.render.build import render_tenant

    t, _ = ha8
    bundle = render_tenant(t)
    log: list[str] = []

    def fake_phases(tenant: Tenant, part: Any, phases: list[str], **kw: Any) -> RunResult:
        log.append("activate " + ",".join(sorted(hb.host for hb in part.hosts)))  # tiers order them
        return RunResult(ok=True, check=False, duration=0.0, hosts={hb.host: HostResult(hb.host) for hb in part.hosts})

    class Recorder(ha.Run):
        def call(self, host: Any, name: str, op: str, **args: Any) -> dict[str, Any]:
            log.append(f"{name} {host.name} {args}")
            return {}

    monkeypatch.setattr(converge, "run_phases", fake_phases)
    monkeypatch.setattr(ha, "Run", Recorder)
    monkeypatch.setattr(ha, "pgsql_switchover", lambda run, new: log.append(f"switchover to {new.name}"))
    staged = RunResult(ok=True, check=False, duration=0.0, hosts={})
    first = {"data": "sql_2", "app": "app_2"}
    reporter = Reporter(say=lambda _: None, warn=lambda _: None)
    assert converge._ha_segments(t, bundle, reporter, staged, first, {"sql_2": "postgresql"}, False).ok
    rest = "activate app_1,app_2,haproxy_1,haproxy_2,voice_1,voice_2"
    assert log == ["activate sql_2", "hold sql_2 {'stop': ['repmgr']}", "activate sql_1",
                   "release sql_2 {'start': ['repmgr']}", rest]
    log.clear()
    assert converge._ha_segments(t, bundle, reporter, staged, first, {"sql_2": "postgresql"}, True).ok
    assert log == ["activate sql_2", "switchover to sql_2",
                   "activate app_1,app_2,haproxy_1,haproxy_2,sql_1,voice_1,voice_2"]
