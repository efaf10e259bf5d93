"""HA Redis and Sentinel require the tenant's password (issue 12, M8), and only where it is needed.

The seed's 8-host HA published Redis on 0.0.0.0:6379 of both HAProxy nodes, and Sentinel on 26379, to
anyone, without a password. These tests read the rendered bundle as the hosts would get it; the real
programs are exercised by tests/integration/test_rendered_configs.py (Redis, Sentinel and HAProxy
started from these files) and the e2e HA tests.
"""

from __future__ import annotations

import re

import pytest

from omldeploy.render import material
from omldeploy.render.build import render_tenant
from omldeploy.state.secret_forms import encoded_forms
from tests.unit.conftest import MakeTenant

CLIENT_ENVS = {  # host -> env files of the Redis clients there
    "app_1": ("/etc/default/django.env", "/etc/default/websockets.env", "/etc/default/kamailio.env",
              "/etc/default/prometheus_redis.env"),
    "voice_1": ("/etc/default/asterisk.env",),
    "haproxy_1": ("/etc/default/haproxy.env",),
}


def _password(tenant: object) -> str:
    return material.tenant_secrets(tenant.folder)["redis_password"]  # type: ignore[attr-defined]


def test_ha_redis_sentinel_and_clients_share_one_generated_password(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ha")
    bundle = render_tenant(tenant)
    pw = _password(tenant)
    assert re.fullmatch(r"[0-9a-f]{48}", pw), "hex: it goes into configs and URLs without quoting"
    auth = bundle.host("app_1").file("/etc/omnileads/redis/auth.conf")
    assert auth.content.decode().splitlines()[1:] == [f"requirepass {pw}", f"masterauth {pw}"]
    assert auth.secret and auth.mode == 0o600
    sentinel = bundle.host("haproxy_1").file("/etc/omnileads/sentinel.conf")
    lines = sentinel.content.decode().splitlines()
    assert f"requirepass {pw}" in lines and f"sentinel auth-pass master {pw}" in lines
    assert sentinel.secret and sentinel.mode == 0o600
    for host, paths in CLIENT_ENVS.items():
        for path in paths:
            f = bundle.host(host).file(path)
            assert f"REDIS_PASSWORD={pw}".encode() in f.content.splitlines(), (host, path)
            assert f.secret and f.mode == 0o600, (host, path)
    kamailio = bundle.host("app_1").file("/etc/omnileads/kamailio.cfg").content.decode()
    assert f'"redis://default:{pw}@172.16.101.204:6379/1"' in kamailio


def test_the_password_is_on_no_command_line_and_not_in_haproxy_cfg(make_tenant: MakeTenant) -> None:
    """Units (argv of ExecStart/ExecStartPre, quadlet Exec=) and haproxy.cfg are public files: none may
    hold the password in any form; the Redis unit includes auth.conf and the start gate reads it."""
    tenant = make_tenant("ha")
    bundle = render_tenant(tenant)
    forms = [f.encode() for f in encoded_forms(_password(tenant))]
    for hb in bundle.hosts:
        for f in hb.files:
            if f.path.endswith((".service", ".container")) or f.path.endswith("haproxy.cfg"):
                assert not any(form in f.content for form in forms), (hb.host, f.path)
                assert not f.secret, (hb.host, f.path)
    unit = bundle.host("app_1").file("/etc/systemd/system/redis.service").content.decode() \
        if any(f.path == "/etc/systemd/system/redis.service" for f in bundle.host("app_1").files) \
        else bundle.host("app_1").file("/etc/containers/systemd/redis.container").content.decode()
    assert "--include /data/auth.conf" in unit
    assert "--auth-file /etc/omnileads/redis/auth.conf" in unit
    assert "install -m 0600 /etc/omnileads/redis/auth.conf" in unit


def test_haproxy_publishes_redis_on_its_lan_address_and_the_vip_only(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ha")
    bundle = render_tenant(tenant)
    lan = {h.name: h.lan_ip for h in tenant.hosts}
    for host in ("haproxy_1", "haproxy_2"):
        cfg = bundle.host(host).file("/etc/omnileads/haproxy.cfg").content.decode()
        frontend = cfg.split("frontend redis_in", 1)[1].split("\n\n", 1)[0]
        binds = re.findall(r"^\s*bind (.+)$", frontend, re.M)
        assert binds == [f"{lan[host]}:6379", "172.16.101.204:6379 transparent"], (host, binds)
        assert 'tcp-check send "AUTH ${REDIS_PASSWORD}\\r\\n"' in cfg


@pytest.mark.parametrize("layout", ["aio", "ait", "ha_aio"])
def test_layouts_without_a_published_redis_render_no_password(make_tenant: MakeTenant, layout: str) -> None:
    """AIO and two-node HA keep Redis on localhost, AIT on the data host's LAN address without HAProxy
    or Sentinel: no auth.conf, no REDIS_PASSWORD (an empty one would make clients send a refused AUTH)."""
    bundle = render_tenant(make_tenant(layout))
    for hb in bundle.hosts:
        for f in hb.files:
            assert f.path != "/etc/omnileads/redis/auth.conf"
            assert b"REDIS_PASSWORD=" not in f.content, (hb.host, f.path)


def test_each_sentinel_calls_the_master_down_after_its_own_delay(make_tenant: MakeTenant) -> None:
    """Staggered `down-after-milliseconds` (components/sentinel): a clean stop of the master closes every
    Sentinel's link at once, and one shared value split the leader vote (18-22 s outages in e2e)."""
    bundle = render_tenant(make_tenant("ha"))
    delays = {}
    for host in ("voice_1", "voice_2", "app_2", "haproxy_1"):
        conf = bundle.host(host).file("/etc/omnileads/sentinel.conf").content.decode()
        m = re.search(r"^sentinel down-after-milliseconds master (\d+)$", conf, re.M)
        assert m, host
        delays[host] = int(m.group(1))
        assert f"SENTINEL_DOWN_AFTER={m.group(1)}".encode() in bundle.host(host).file(
            "/etc/default/sentinel.env").content.splitlines()
    assert sorted(delays.values()) == [3000, 3400, 3800, 4200], delays
