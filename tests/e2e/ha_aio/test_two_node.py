"""Upstream HEAD's two-node HA (two all-in-one nodes with `omnileads_ha`), installed from HEAD's
inventory shape on 2 sandbox hosts (conftest.py), then failed as an operator fears most: the main
node loses power with probe loops running through the VIPs (an HTTPS request and a committed
PostgreSQL write every 100 ms). In order, each leaving the cluster the next one uses:
  1. steady state: PostgreSQL streams main -> backup; the web/voice VIP and the RW VIP on main, the RO
     VIP on the backup; HTTPS through the VIP verified against the tenant CA; each node's app reaches
     PostgreSQL through the RW VIP and its own Redis; cron runs on main only, which also refilled its
     Redis; no Sentinel, no HAProxy; a second install changes and restarts nothing;
  2. power cut of main: the backup is promoted, takes the RW, RO and web/voice VIPs, starts cron and
     refills its Redis; every write acknowledged before the cut is there;
  3. main powers on: its guard fences it (the backup is primary on a newer timeline), it holds no VIP,
     runs no cron and refuses writes;
  4. nginx stopped on the node holding the web/voice VIP: the VIP, cron and the Redis refill move to
     the other node (fenced PostgreSQL and all: the app uses the RW VIP); nginx back, the VIP stays.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ha.common import ROUNDS, cli, holders, psql, start_unit, until, vips
from ha.probes import Probes, more_answers
from tenants import set_versions, tags

from omldeploy.inventory import Tenant
from omldeploy.sandbox import Sandbox, faults
from omldeploy.state import ledger

from .conftest import BACKUP, MAIN, TENANT

BOTH = (MAIN, BACKUP)
FENCE = "/var/lib/omnileads/postgresql-ha/fenced"
MANAGE_LOG = "/opt/omnileads/static/sandbox/manage.log"


def writable(sb: Sandbox, host: str) -> bool:
    return bool(psql(sb, host, "SELECT NOT pg_is_in_recovery()", check=False) == "t")


def active(sb: Sandbox, host: str, unit: str) -> bool:
    return sb.run(host, f"systemctl is-active {unit}", check=False, timeout=5).stdout.strip() == "active"


def refills(sb: Sandbox, host: str) -> int:
    """How many times the node's app was asked to rebuild Asterisk's Redis data (stand-in's record)."""
    log = sb.run(host, f"podman exec oml-django-server cat {MANAGE_LOG}", check=False).stdout
    return log.count("regenerar_asterisk")


def app_health(sb: Sandbox, host: str) -> dict[str, Any]:
    out = sb.run(host, "python3 -c \"import urllib.request as u; "
                       "print(u.urlopen('http://localhost:8099/health', timeout=5).read().decode())\"").stdout
    return json.loads(out)  # type: ignore[no-any-return]


def first_times(t0: float, conditions: dict[str, Callable[[], bool]], timeout: float) -> dict[str, float]:
    """Poll every condition (bounded) and record, for each, the seconds from t0 to its first truth."""
    seen: dict[str, float] = {}
    end = time.monotonic() + timeout
    while len(seen) < len(conditions):
        for name, cond in conditions.items():
            if name not in seen:
                try:
                    if cond():
                        seen[name] = time.monotonic() - t0
                except (OSError, subprocess.SubprocessError):
                    pass
        assert time.monotonic() < end, f"not true after {timeout:.0f} s: {sorted(set(conditions) - set(seen))}"
        time.sleep(0.1)
    return seen


def https_ok(tenant: Tenant, address: str) -> bool:
    ctx = ssl.create_default_context(cafile=str(tenant.folder / ".omldeploy/pki/ca.pem"))
    with urllib.request.urlopen(f"https://{address}/health", context=ctx, timeout=5) as resp:
        return bool(resp.status == 200)


def test_install_reaches_the_steady_state(pair: tuple[Tenant, float, str], pair_sandbox: Sandbox,
                                          pair_instances: Path) -> None:
    tenant, took, _ = pair
    sb = pair_sandbox
    v = vips(sb)
    print(f"two-node HA install: {took:.0f} s")
    assert tenant.layout.name == "ha-aio"
    assert psql(sb, MAIN, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1"
    assert psql(sb, BACKUP, "SELECT pg_is_in_recovery()") == "t"
    until("web/voice VIP and RW VIP on main, RO VIP on backup",
          lambda: (holders(sb, v["web"], BOTH), holders(sb, v["rw"], BOTH), holders(sb, v["ro"], BOTH))
          == ([MAIN], [MAIN], [BACKUP]), 60, 0.5)
    assert https_ok(tenant, v["web"])
    for h in BOTH:
        app = app_health(sb, h)
        assert app["reached"]["postgres"]["ok"] and v["rw"] in app["reached"]["postgres"]["detail"], app
        assert app["reached"]["redis"]["ok"] and "localhost" in app["reached"]["redis"]["detail"], app
        for unit in ("sentinel", "haproxy"):
            assert sb.run(h, f"systemctl cat {unit}.service", check=False).returncode != 0, unit
    until("cron on main only", lambda: active(sb, MAIN, "omlcron") and not active(sb, BACKUP, "omlcron"), 60, 0.5)
    until("main refilled its Redis", lambda: refills(sb, MAIN) >= 1, 60, 0.5)

    t0 = time.monotonic()
    proc = cli(pair_instances, "install", "--tenant", TENANT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rec = ledger.read(tenant.folder)[-1]
    print(f"two-node HA re-run: {time.monotonic() - t0:.0f} s")
    assert rec.outcome == "ok" and rec.changed == 0 and rec.restarted == [], rec
    assert psql(sb, BACKUP, "SELECT pg_is_in_recovery()") == "t"  # never re-cloned, still a standby


def test_power_cut_of_main_moves_the_service_to_the_backup(pair: tuple[Tenant, float, str],
                                                           pair_sandbox: Sandbox) -> None:
    tenant, sb = pair[0], pair_sandbox
    v = vips(sb)
    before = refills(sb, BACKUP)
    with Probes(tenant, sb, https=True, pg=True) as p:
        time.sleep(1.0)  # acknowledged writes before the cut
        t0 = time.monotonic()
        faults.power_off(sb, MAIN, hard=True)
        seen = first_times(t0, {
            "promoted": lambda: writable(sb, BACKUP),
            "rw": lambda: holders(sb, v["rw"], (BACKUP,)) == [BACKUP],
            "web": lambda: holders(sb, v["web"], (BACKUP,)) == [BACKUP],
            "writes": lambda: p.pg.failed > 0 and p.pg._down_since is None,
            "https": lambda: p.https.attempts > 0 and p.https._down_since is None,
        }, 120)
        promoted, web = seen["promoted"], seen["web"]
        time.sleep(1.0)
    print(f"two-node power cut of main: web/voice VIP moved {web:.1f} s, HTTPS back {seen['https']:.1f} s, "
          f"PostgreSQL promoted {promoted:.1f} s, RW VIP moved {seen['rw']:.1f} s, writes back {seen['writes']:.1f} s; "
          f"{p.summary()}")
    assert holders(sb, v["ro"], (BACKUP,)) == [BACKUP]  # a lone primary holds the RO VIP too
    until("cron on the backup", lambda: active(sb, BACKUP, "omlcron"), 60, 0.5)
    until("the backup refilled its Redis", lambda: refills(sb, BACKUP) > before, 60, 0.5)
    import psycopg

    s = tenant.settings
    with psycopg.connect(host=v["rw"], dbname=s.text("postgres_database"), user=s.text("postgres_user"),
                         password=s.text("postgres_password"), connect_timeout=5) as c:
        have = {r[0] for r in c.execute("SELECT n FROM ha_probe_writes").fetchall()}
    assert not set(p.pg.acked) - have, "acknowledged writes lost"
    assert https_ok(tenant, v["web"])


def test_main_returns_fenced_and_serves_nothing(pair: tuple[Tenant, float, str], pair_sandbox: Sandbox) -> None:
    sb = pair_sandbox
    v = vips(sb)
    faults.power_on(sb, MAIN)
    marker = until("main fenced", lambda: sb.run(MAIN, f"cat {FENCE}", check=False).stdout, 90, 1)
    assert "is primary on timeline" in json.loads(marker)["reason"]
    until("postgresql stopped on main", lambda: sb.run(MAIN, "systemctl is-active postgresql", check=False
                                                       ).stdout.strip() in ("inactive", "failed"), 60, 1)
    until("main's keepalived up", lambda: active(sb, MAIN, "keepalived"), 120, 1)
    time.sleep(5)  # keepalived had every chance to take a VIP back
    assert holders(sb, v["web"], BOTH) == [BACKUP]  # sticky: a returning main causes no second outage
    assert holders(sb, v["rw"], BOTH) == [BACKUP] and holders(sb, v["ro"], BOTH) == [BACKUP]
    assert not active(sb, MAIN, "omlcron") and active(sb, BACKUP, "omlcron")
    assert writable(sb, BACKUP) and not writable(sb, MAIN)


def test_the_vip_follows_the_web_health_and_takes_cron_along(pair: tuple[Tenant, float, str],
                                                             pair_sandbox: Sandbox) -> None:
    """nginx stopped on the node that holds the web/voice VIP (the backup, since the power cut): the VIP,
    cron and the Redis refill move to the other node, whose PostgreSQL is fenced: it serves through the
    RW VIP, which stays where the primary is. nginx back: the VIP stays (sticky), no second outage."""
    tenant, sb = pair[0], pair_sandbox
    v = vips(sb)
    before = refills(sb, MAIN)
    with Probes(tenant, sb, https=True, pg=False) as p:
        time.sleep(1.0)
        t0 = time.monotonic()
        sb.run(BACKUP, "systemctl stop nginx")
        seen = first_times(t0, {
            "web": lambda: holders(sb, v["web"], BOTH) == [MAIN],
            "https": lambda: p.https.failed > 0 and p.https._down_since is None,
            "cron": lambda: active(sb, MAIN, "omlcron") and not active(sb, BACKUP, "omlcron"),
        }, 60)
        time.sleep(1.0)
    print(f"two-node nginx stopped on the holder: VIP moved {seen['web']:.1f} s, HTTPS back {seen['https']:.1f} s, "
          f"cron moved {seen['cron']:.1f} s; {p.summary()}")
    until("main refilled its Redis", lambda: refills(sb, MAIN) > before, 60, 0.5)
    assert holders(sb, v["rw"], BOTH) == [BACKUP]
    app = app_health(sb, MAIN)
    assert app["reached"]["postgres"]["ok"], app  # through the RW VIP, on the backup
    start_unit(sb, BACKUP, "nginx.service")
    time.sleep(5)
    assert holders(sb, v["web"], BOTH) == [MAIN] and not active(sb, BACKUP, "omlcron")


def ha_status(instances: Path) -> tuple[int, dict[str, Any]]:
    proc = cli(instances, "ha", "status", "--tenant", TENANT, "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def named(tenant: Tenant, host: str) -> str:
    """The inventory's name of a sandbox host (h1 carries `ha_role: main`, h2 `backup`)."""
    return next(h.name for h in tenant.hosts if h.ha_role == ("main" if host == MAIN else "backup"))


def status_clean(instances: Path) -> dict[str, Any] | None:
    code, status = ha_status(instances)
    return status if code == 0 else None


def pair_of(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in status["pairs"] if p["pair"] == name)


def test_ha_status_names_the_fenced_main_and_wrong_actions_change_nothing(
        pair: tuple[Tenant, float, str], pair_sandbox: Sandbox, pair_instances: Path) -> None:
    """After the failover: `ha status` says main is fenced and which action repairs it; the actions
    meant for other states refuse with the fix in their words, and nothing on the hosts moves."""
    tenant, sb = pair[0], pair_sandbox
    code, status = ha_status(pair_instances)
    pg = pair_of(status, "postgresql")
    assert code == 1 and not pg["ok"] and pg["active"] == [named(tenant, BACKUP)], status
    assert pg["repair"] == "pgsql_node_recovery_main" and any("FENCED" in d for d in pg["details"]), pg
    human = cli(pair_instances, "ha", "status", "--tenant", TENANT)
    assert human.returncode == 1 and f"omldeploy pgsql_node_recovery_main --tenant {TENANT}" in human.stdout
    overview = cli(pair_instances, "status", "--tenant", TENANT)
    assert "HA: postgresql DEGRADED" in overview.stdout, overview.stdout[-2000:]
    marker = sb.run(MAIN, f"cat {FENCE}").stdout
    for action, words in (("pgsql_node_takeover_main", "pgsql_node_recovery_main first"),
                          ("pgsql_node_recovery_backup", "still a writable primary"),
                          ("redis_node_takeover_main", "standalone Redis")):
        proc = cli(pair_instances, action, "--tenant", TENANT)
        assert proc.returncode == 1 and "REFUSED" in proc.stderr and words in proc.stderr, (action, proc.stderr)
        rec = ledger.read(tenant.folder)[-1]
        assert rec.action == action and rec.outcome == "refused" and rec.extra["steps"] == [], rec
    assert sb.run(MAIN, f"cat {FENCE}").stdout == marker  # still fenced, untouched
    assert writable(sb, BACKUP) and not active(sb, MAIN, "postgresql")


def test_recovery_then_takeover_return_to_the_installed_layout(
        pair: tuple[Tenant, float, str], pair_sandbox: Sandbox, pair_instances: Path) -> None:
    """The seed's sequence after a failover of the primary: recovery of main (it becomes the backup's
    standby), then takeover (main primary again, backup its standby), with committed writes probed
    through the RW VIP: none acknowledged is lost, and the outage is the takeover's switch."""
    tenant, sb = pair[0], pair_sandbox
    v = vips(sb)
    t0 = time.monotonic()
    proc = cli(pair_instances, "pgsql_node_recovery_main", "--tenant", TENANT)
    recovery = time.monotonic() - t0
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert sb.run(MAIN, f"test -e {FENCE}", check=False).returncode != 0
    assert psql(sb, MAIN, "SELECT pg_is_in_recovery()") == "t"
    assert psql(sb, BACKUP, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1"
    assert holders(sb, v["rw"], BOTH) == [BACKUP] and holders(sb, v["ro"], BOTH) == [MAIN]
    rec = ledger.read(tenant.folder)[-1]
    assert rec.action == "pgsql_node_recovery_main" and rec.outcome == "ok", rec
    assert next(s["step"] for s in rec.extra["steps"]) == "rejoin" and rec.extra["steps"][0]["ok"]
    code, status = ha_status(pair_instances)
    pg = pair_of(status, "postgresql")
    assert pg["ok"] and pg["swapped"] and pg["repair"] == "pgsql_node_takeover_main", status
    mp = sb.run(MAIN, "podman volume inspect --format '{{.Mountpoint}}' oml_postgres").stdout.strip()
    assert sb.run(MAIN, f"test -e {mp}/pgdata.replaced", check=False).returncode != 0  # removed once verified
    again = cli(pair_instances, "pgsql_node_recovery_main", "--tenant", TENANT)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr

    with Probes(tenant, sb, https=False, pg=True) as p:
        more_answers(p.pg)
        t1 = time.monotonic()
        proc = cli(pair_instances, "pgsql_node_takeover_main", "--tenant", TENANT)
        takeover = time.monotonic() - t1
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        until("writes through the RW VIP again", lambda: p.pg._down_since is None and p.pg.attempts > 0, 60, 0.2)
        more_answers(p.pg)
    print(f"two-node actions: pgsql_node_recovery_main {recovery:.1f} s, pgsql_node_takeover_main {takeover:.1f} s; "
          f"during the takeover {p.summary()}")
    assert psql(sb, MAIN, "SELECT pg_is_in_recovery()") == "f" and psql(sb, BACKUP, "SELECT pg_is_in_recovery()") == "t"
    assert holders(sb, v["rw"], BOTH) == [MAIN] and holders(sb, v["ro"], BOTH) == [BACKUP]
    import psycopg

    s = tenant.settings
    with psycopg.connect(host=v["rw"], dbname=s.text("postgres_database"), user=s.text("postgres_user"),
                         password=s.text("postgres_password"), connect_timeout=5) as c:
        have = {r[0] for r in c.execute("SELECT n FROM ha_probe_writes").fetchall()}
    assert p.pg.acked and not set(p.pg.acked) - have, "acknowledged writes lost in the takeover"
    code, status = ha_status(pair_instances)
    pg = pair_of(status, "postgresql")
    assert code == 0 and pg["ok"] and not pg["swapped"] and pg["active"] == [named(tenant, MAIN)], status
    rec = ledger.read(tenant.folder)[-1]
    assert rec.action == "pgsql_node_takeover_main" and rec.outcome == "ok", rec
    assert [s["step"] for s in rec.extra["steps"] if "host" in s] == ["pause", "stop", "promote", "resume", "rejoin"]


def drill(instances: Path, component: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(instances, "ha", "drill", "--tenant", TENANT, "--component", component, *extra)


def test_drills_fail_over_and_return_to_the_installed_layout(
        pair: tuple[Tenant, float, str], pair_sandbox: Sandbox, pair_instances: Path) -> None:
    """`ha drill` as an operator runs it: the plan first (nothing changes), then the drill for PostgreSQL
    (stopped on the primary, the backup promoted, main recovered and handed the role back), measured,
    checked and put back; `ha status` clean at the end."""
    tenant, sb = pair[0], pair_sandbox
    v = vips(sb)
    entries = len(ledger.read(tenant.folder))
    shown = drill(pair_instances, "postgres")
    assert shown.returncode == 0 and "plan only" in shown.stdout and \
        f"stop postgresql on {named(tenant, MAIN)}" in shown.stdout, \
        shown.stdout + shown.stderr
    assert len(ledger.read(tenant.folder)) == entries and writable(sb, MAIN)
    refused = drill(pair_instances, "redis", "--yes")
    assert refused.returncode == 1 and "no redis pair" in refused.stderr, refused.stderr
    for component in ("postgres",):  # the VIP pairs' drills run on the 8-host cluster (tests/e2e/ha)
        t0 = time.monotonic()
        proc = drill(pair_instances, component, "--yes")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        rec = ledger.read(tenant.folder)[-1]
        assert rec.action == f"ha-drill-{component}" and rec.outcome == "ok", rec
        print(f"two-node drill {component} ({time.monotonic() - t0:.0f} s): {rec.detail}")
        report = rec.extra["report"]
        assert report["failed_node"] == named(tenant, MAIN) and report["new_active"] == [named(tenant, BACKUP)], report
        assert report.get("lost", 0) == 0 and report["recovered_s"] < 60, report
    code, status = ha_status(pair_instances)
    assert code == 0 and all(not p["swapped"] for p in status["pairs"]), status
    assert holders(sb, v["rw"], BOTH) == [MAIN] and holders(sb, v["web"], BOTH) == [MAIN]
    assert psql(sb, MAIN, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'omldeploy_drill%'",
                db=tenant.settings.text("postgres_database")) == "0"


def test_a_backup_from_the_standby_restores_with_replication_healthy(
        pair: tuple[Tenant, float, str], pair_sandbox: Sandbox, pair_instances: Path) -> None:
    """HA backup and restore: the dump is taken from the streaming standby (through the RO VIP); the
    restore goes to the primary, the standby follows it by replication, and `ha status` is clean."""
    tenant, sb = pair[0], pair_sandbox
    db = tenant.settings.text("postgres_database")
    print_sql = "SELECT count(*) || ':' || md5(string_agg(h, ',' ORDER BY n)) FROM ha_bk"
    psql(sb, MAIN, "CREATE TABLE ha_bk AS SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 5000) g", db=db)
    before = psql(sb, MAIN, print_sql, db=db)
    until("the standby has the rows", lambda: psql(sb, BACKUP, print_sql, db=db, check=False) == before, 30, 0.5)
    proc = cli(pair_instances, "backup", "--tenant", TENANT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "dumped from the standby" in out, out[-3000:]
    listing = cli(pair_instances, "backups", "list", "--tenant", TENANT, "--json")
    bid = str(json.loads(listing.stdout)["backups"][-1]["id"])
    psql(sb, MAIN, "DROP TABLE ha_bk", db=db)
    t0 = time.monotonic()
    proc = cli(pair_instances, "restore", "--tenant", TENANT, "--ts", bid, "--yes")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    print(f"two-node HA restore of {bid}: {time.monotonic() - t0:.0f} s")
    assert psql(sb, MAIN, print_sql, db=db) == before
    until("the standby follows the restore", lambda: psql(sb, BACKUP, print_sql, db=db, check=False) == before,
          60, 0.5)
    _code, status = until("ha status clean after the restore",
                         lambda: (lambda r: r if r[0] == 0 else None)(ha_status(pair_instances)), 90, 2)
    assert pair_of(status, "postgresql")["active"] == [named(tenant, MAIN)]


def test_a_postgresql_upgrade_with_and_without_switchover(
        pair: tuple[Tenant, float, str], pair_sandbox: Sandbox, pair_instances: Path) -> None:
    """A new PostgreSQL image on the running pair, with committed writes probed through the RW VIP.
    `--switchover`: the standby (backup) is upgraded first, takes the primary role, and the old primary
    is upgraded as its standby. Without it (back to the installed tag): the standby first again (now
    main), then the primary restarts in place. Both keep every acknowledged write."""
    tenant, sb = pair[0], pair_sandbox
    v = vips(sb)
    figures = []
    runs: list[tuple[str, tuple[str, ...], str]] = [("B", ("--switchover",), BACKUP), ("A", (), BACKUP)]
    if ROUNDS == 1:  # CI's budget: the default (in place: standby first, then the primary restarts)
        runs = [("B", (), MAIN)]
    for which, extra, primary_after in runs:
        set_versions(tenant, {"postgres_version": tags(which)["postgres_version"]})
        with Probes(tenant, sb, https=False, pg=True) as p:
            more_answers(p.pg)
            t0 = time.monotonic()
            proc = cli(pair_instances, "upgrade", "--tenant", TENANT, "--no-backup", *extra)
            took = time.monotonic() - t0
            until("writes through the RW VIP", lambda p=p: p.pg._down_since is None and p.pg.attempts > 0, 60, 0.2)
            more_answers(p.pg)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-5000:]
        assert "rolling order, passive side first" in out, out[-3000:]
        figures.append(f"{which} {' '.join(extra) or 'in place'}: {took:.0f} s, {p.pg.summary()}")
        assert writable(sb, primary_after) and holders(sb, v["rw"], BOTH) == [primary_after]
        import psycopg

        s = tenant.settings
        with psycopg.connect(host=v["rw"], dbname=s.text("postgres_database"), user=s.text("postgres_user"),
                             password=s.text("postgres_password"), connect_timeout=5) as c:
            have = {r[0] for r in c.execute("SELECT n FROM ha_probe_writes").fetchall()}
        assert p.pg.acked and not set(p.pg.acked) - have, "acknowledged writes lost"
        until("ha status clean", lambda: status_clean(pair_instances), 90, 2)
    print("two-node PostgreSQL upgrade: " + "; ".join(figures))
