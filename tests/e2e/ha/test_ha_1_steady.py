"""The seed's HA inventory (`inventory_ha.yml`) installed on 8 sandbox hosts, as an operator runs it:
the steady state (fixtures in conftest.py, host map in common.py).

Real PostgreSQL 15 + repmgr, Redis + Sentinel, keepalived and HAProxy run in the test images; the
OMniLeads application images are the sandbox's stand-ins, which really connect through the VIPs.
Checked after install: replication streaming with both nodes registered in repmgr and repmgrd running;
each VIP on the host that should hold it (and on no other); Sentinel sees the master, its replica and
all sentinels; HTTPS through the HAProxy VIP verified against the tenant CA; the app reaches PostgreSQL
and Redis through the VIPs; credentials 0600; a second install changes nothing.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

from tenants import passwords

from omldeploy.components.redis.redis_role import ask
from omldeploy.inventory import Tenant
from omldeploy.render import material
from omldeploy.sandbox import Sandbox
from omldeploy.state import ledger

from .common import app_sql, cli, holders, psql, until, vips

#: shell prefix that exports REDISCLI_AUTH from a rendered config's `requirepass` (for `podman exec -e
#: REDISCLI_AUTH ... redis-cli`): the password reaches redis-cli without being on any command line
AUTH_FROM = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' {conf}); export REDISCLI_AUTH;"


def test_install_takes_the_ha_inventory_to_a_running_cluster(ha: tuple[Tenant, float, str]) -> None:
    tenant, took, out = ha
    rec = ledger.read(tenant.folder)[-1]
    assert rec.outcome == "ok"
    print(f"HA install: {took:.0f} s")
    for secret in passwords(tenant):
        assert secret not in out


def test_postgresql_replicates_from_main_to_backup_with_repmgr(ha: tuple[Tenant, float, str],
                                                               ha_sandbox: Sandbox) -> None:
    sb = ha_sandbox
    assert psql(sb, "h1", "SELECT pg_is_in_recovery()") == "f"
    assert psql(sb, "h2", "SELECT pg_is_in_recovery()") == "t"
    streaming = until("standby streaming", lambda: psql(
        sb, "h1", "SELECT host(client_addr) || ' ' || state FROM pg_stat_replication"), 60)
    assert streaming == f"{sb.host('h2').ip} streaming"
    nodes = psql(sb, "h1", "SELECT node_id, node_name, type, active FROM repmgr.nodes ORDER BY node_id", "repmgr")
    assert nodes.splitlines() == ["1|sql_1|primary|t", "2|sql_2|standby|t"]
    for h in ("h1", "h2"):
        assert sb.run(h, "systemctl is-active repmgr.service").stdout.strip() == "active"
        assert "repmgrd" in sb.run(h, "podman top oml-repmgr-server comm").stdout
        assert sb.run(h, "stat -c %a /etc/omnileads/postgresql/pgpass").stdout.strip() == "600"
        assert sb.run(h, "podman exec oml-postgresql-server stat -c '%a %U' /var/lib/postgresql/data/.pgpass"
                      ).stdout.strip() == "600 postgres"
    # a row written through the RW VIP is read back from the standby
    token = f"ha-{time.time_ns()}"
    psql(sb, "h1", f"CREATE TABLE IF NOT EXISTS ha_probe (t text); INSERT INTO ha_probe VALUES ('{token}')",
         "omnileads")
    until("row replicated", lambda: token in psql(sb, "h2", "SELECT t FROM ha_probe", "omnileads"), 30)


def test_each_vip_is_on_the_host_that_should_hold_it(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox) -> None:
    sb = ha_sandbox
    v = vips(sb)
    want = {"rw": ["h1"], "ro": ["h2"], "voice": ["h3"], "web": ["h7"]}
    for key, hosts in want.items():
        until(f"{key} VIP {v[key]} on {hosts}", lambda k=key, h=hosts: holders(sb, v[k]) == h, 30)


def test_sentinel_sees_one_master_one_replica_and_every_sentinel(ha: tuple[Tenant, float, str],
                                                                 ha_sandbox: Sandbox) -> None:
    sb = ha_sandbox
    app1 = sb.host("h5").ip

    def master() -> dict[str, str] | None:
        out = sb.run("h3", f"{AUTH_FROM.format(conf='/etc/omnileads/sentinel.conf')} podman exec -e REDISCLI_AUTH "
                           f"oml-sentinel-server redis-cli -h {sb.host('h3').ip} -p 26379 "
                           "sentinel master master").stdout.split()
        info = dict(zip(out[::2], out[1::2], strict=False))
        ok = info.get("ip") == app1 and info.get("num-slaves") == "1" and info.get("num-other-sentinels") == "3"
        return info if ok else None

    info = until("sentinel view", master, 60, 2)
    assert info["flags"] == "master"
    role = sb.run("h6", f"{AUTH_FROM.format(conf='/etc/omnileads/redis/auth.conf')} podman exec -e REDISCLI_AUTH "
                        f"oml-redis-server redis-cli -h {sb.host('h6').ip} role").stdout.split()
    assert role[:2] == ["slave", app1]


def test_redis_and_sentinel_require_the_tenant_password(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox) -> None:
    """Issue 12, M8: from another machine (this controller), Redis through the HAProxy VIP, Redis on an
    app node and a Sentinel all refuse a client without the password, and answer with it; HAProxy
    listens for Redis on its LAN address and the VIP only (not 0.0.0.0); the password is on no process's
    command line (`ps` shows those to every user) and its files are 0600."""
    sb = ha_sandbox
    pw = material.tenant_secrets(ha[0].folder)["redis_password"]
    targets = {"HAProxy VIP": (vips(sb)["web"], 6379), "h5 Redis": (sb.host("h5").ip, 6379),
               "h3 Sentinel": (sb.host("h3").ip, 26379)}
    for what, (ip, port) in targets.items():
        assert str(ask(ip, port, 5.0, ("PING",))[0]).startswith("NOAUTH"), what
        assert ask(ip, port, 5.0, ("PING",), password="wrong-password")[0] != b"PONG", what
        assert ask(ip, port, 5.0, ("PING",), password=pw) == [b"PONG"], what
    for h in ("h7", "h8"):
        listen = sb.run(h, "ss -Hltn 'sport = :6379'").stdout.split()
        assert "0.0.0.0:6379" not in listen and "*:6379" not in listen, (h, listen)
        assert f"{sb.host(h).ip}:6379" in listen and f"{vips(sb)['web']}:6379" in listen, (h, listen)
    files = {"h5": "/etc/omnileads/redis/auth.conf /etc/default/django.env",
             "h3": "/etc/omnileads/sentinel.conf", "h7": "/etc/default/haproxy.env"}
    for h, paths in files.items():
        modes = sb.run(h, f"stat -c '%a %n' {paths}").stdout.split("\n")
        assert all(m.startswith("600 ") for m in modes if m), (h, modes)
        argvs = sb.run(h, "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null").stdout
        assert pw not in argvs, f"the Redis password is on a command line on {h}"


def test_https_through_the_haproxy_vip_is_verified_against_the_tenant_ca(ha: tuple[Tenant, float, str],
                                                                        ha_sandbox: Sandbox) -> None:
    tenant = ha[0]
    vip = vips(ha_sandbox)["web"]
    ctx = ssl.create_default_context(cafile=str(tenant.folder / ".omldeploy/pki/ca.pem"))
    with socket.create_connection((vip, 443), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=vip) as tls:
        assert tls.getpeercert()
    with urllib.request.urlopen(f"https://{vip}/health", context=ctx, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["role"] == "nginx"


def test_the_app_reaches_postgresql_and_redis_through_the_vips(ha: tuple[Tenant, float, str],
                                                               ha_sandbox: Sandbox) -> None:
    sb = ha_sandbox
    v = vips(sb)
    for h in ("h5", "h6"):
        with urllib.request.urlopen(f"http://{sb.host(h).ip}:8099/health", timeout=10) as resp:
            app: dict[str, Any] = json.loads(resp.read())
        assert app["reached"]["postgres"]["ok"] and v["rw"] in app["reached"]["postgres"]["detail"]
        assert app["reached"]["redis"]["ok"] and v["web"] in app["reached"]["redis"]["detail"]
    # the read-only VIP (PGHOSTRO) takes the app's own credentials to the standby
    image = sb.run("h5", "podman inspect --format '{{.ImageName}}' oml-postgresql-server", check=False)
    assert image.returncode != 0  # no PostgreSQL on the app node: the client below goes over the network
    pg_image = sb.run("h1", "podman inspect --format '{{.ImageName}}' oml-postgresql-server").stdout.strip()
    assert pg_image.split("/", 1)[1].startswith("omnileads/postgres:")
    assert app_sql(sb, "SELECT pg_is_in_recovery(), inet_server_addr()", v["ro"]) == f"t|{v['ro']}"


def test_a_second_install_changes_nothing(ha: tuple[Tenant, float, str], instances: Path,
                                          ha_sandbox: Sandbox) -> None:
    tenant = ha[0]
    t0 = time.monotonic()
    proc = cli(instances, "install", "--tenant", "ha")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rec = ledger.read(tenant.folder)[-1]
    print(f"HA re-run: {time.monotonic() - t0:.0f} s")
    assert rec.outcome == "ok" and rec.changed == 0 and rec.restarted == [], rec
    # never re-cloned: the standby still streams from the same system
    sb = ha_sandbox
    assert psql(sb, "h2", "SELECT pg_is_in_recovery()") == "t"
    ids = {psql(sb, h, "SELECT system_identifier FROM pg_control_system()") for h in ("h1", "h2")}
    assert len(ids) == 1
