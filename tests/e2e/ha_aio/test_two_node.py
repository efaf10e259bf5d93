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

from ha.common import cli, holders, psql, start_unit, until, vips
from ha.probes import Probes

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
