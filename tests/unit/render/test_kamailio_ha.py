"""HA Kamailio wiring, asserted on the rendered bundle (issue 9, "Correct wiring").

Golden files only say "nothing changed"; these say what must be true for WebRTC agents to register
and talk in HA: the app's secret, shared registrations in Redis through the Redis entry point, media
through both rtpengines, and every app-side address pointing at the node's own Kamailio/websockets.
`kamailio -c` on the same render is in tests/integration/test_rendered_configs.py.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re

import pytest

from omldeploy.components.kamailio import APP_SIP_SECRET, COMPONENT, cfg_address, cfg_ip
from omldeploy.placement import place
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

CFG = "/etc/omnileads/kamailio.cfg"
APPS = {"app_1": "172.16.101.105", "app_2": "172.16.101.106"}
VOICES = ("172.16.101.103", "172.16.101.104")
REDIS_VIP, VOICE_VIP, WEB_VIP = "172.16.101.204", "172.16.101.203", "172.16.101.204"


def cfg(bundle, host: str) -> str:  # type: ignore[no-untyped-def]
    return str(bundle.host(host).file(CFG).content.decode())


def env(bundle, host: str, path: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    text = bundle.host(host).file(path).content.decode()
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def modparams(text: str, module: str) -> dict[str, str]:
    """modparam("module", "name", value) -> {name: value without quotes} (last one wins)."""
    found = re.findall(rf'^modparam\("(?:[a-z_]+\|)*{module}(?:\|[a-z_]+)*", "([a-z_]+)", (.+)\)$', text, re.M)
    return {name: value.strip('"') for name, value in found}


@pytest.fixture
def bundle(make_tenant: MakeTenant):  # type: ignore[no-untyped-def]
    return render_tenant(make_tenant("ha"))


def test_agents_authenticate_with_the_apps_secret(bundle) -> None:  # type: ignore[no-untyped-def]
    """The app signs `<expiry>:<extension>` with HMAC-SHA1 of its hard-coded SIP_SECRET_KEY and sends
    it base64-encoded; auth_ephemeral must hold that key with its default algorithm and user format."""
    assert APP_SIP_SECRET == "SUp3rS3cr3tK3y"  # ominicontacto settings: SIP_SECRET_KEY
    for host in APPS:
        params = modparams(cfg(bundle, host), "auth_ephemeral")
        assert params == {"secret": APP_SIP_SECRET}  # default sha1 and "<timestamp>:<user>" kept
    # what the app computes for an agent, and auth_ephemeral computes the same from the same key
    user = "1900000000:1001"
    app_password = base64.b64encode(hmac.new(b"SUp3rS3cr3tK3y", user.encode(), hashlib.sha1).digest()).decode()
    assert app_password == base64.b64encode(
        hmac.new(params["secret"].encode(), user.encode(), hashlib.sha1).digest()).decode()
    assert bundle.host("app_1").file(CFG).mode == 0o600


def test_no_per_tenant_kamailio_secret_is_generated(make_tenant: MakeTenant) -> None:
    """A random per-tenant key is what broke REGISTER in HA; none is made any more."""
    tenant = make_tenant("ha")
    render_tenant(tenant)
    assert "kamailio" not in (tenant.folder / ".omldeploy/secrets.yml").read_text()


def test_registrations_are_shared_in_redis_through_the_redis_entry_point(bundle) -> None:  # type: ignore[no-untyped-def]
    ids = set()
    for host in APPS:
        text = cfg(bundle, host)
        usrloc = modparams(text, "usrloc")
        # the HAProxy VIP follows the Redis master, so both nodes write to the same master
        # (authenticated: HA Redis requires the tenant's password, issue 12 M8)
        assert re.fullmatch(rf"redis://default:[0-9a-f]{{48}}@{re.escape(REDIS_VIP)}:6379/1", usrloc["db_url"])
        assert usrloc["db_mode"] == "1" and usrloc["server_id_filter"] == "1" and usrloc["version_table"] == "0"
        assert 'loadmodule "db_redis.so"' in text
        assert text.index('loadmodule "db_redis.so"') < text.index('loadmodule "usrloc.so"')
        ids.add(re.search(r"^server_id=(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert ids == {"1", "2"}  # each node reloads only its own contacts


def test_media_goes_through_both_rtpengines_with_webrtc_conversion(bundle) -> None:  # type: ignore[no-untyped-def]
    text = cfg(bundle, "app_1")
    assert modparams(text, "rtpengine")["rtpengine_sock"] == " ".join(f"udp:{ip}:22222" for ip in VOICES)
    offers = re.findall(r'rtpengine_offer\("([^"]+)"\)', text)
    answers = re.findall(r'rtpengine_answer\("([^"]+)"\)', text)
    # agent -> Asterisk: plain RTP without ICE; answer back to the browser as SAVPF with ICE
    assert any("ICE=remove" in o and "RTP/AVP" in o and "rtcp-mux-demux" in o for o in offers)
    assert any("ICE=force" in a and "RTP/SAVPF" in a and "rtcp-mux-require" in a for a in answers)
    # Asterisk -> agent: DTLS-SRTP with ICE and rtcp-mux to the browser; plain RTP answer to Asterisk
    assert any("ICE=force" in o and "UDP/TLS/RTP/SAVP" in o and "rtcp-mux-offer" in o for o in offers)
    assert any("ICE=remove" in a and "RTP/AVP" in a for a in answers)
    assert "rtpengine_delete()" in text  # sessions end with the call, not at rtpengine's timeout


def test_each_node_binds_and_advertises_itself_and_trusts_both_voice_nodes(bundle) -> None:  # type: ignore[no-untyped-def]
    for host, lan in APPS.items():
        text = cfg(bundle, host)
        assert re.findall(r"^listen=(.+)$", text, re.M) == [f"udp:{lan}:SIP_PORT", f"tls:{lan}:WSS_PORT"]
        assert "#!define SIP_PORT 10060" in text and "#!define WSS_PORT 14443" in text
        # Asterisk reaches an agent at the node holding its WebSocket, on the port it listens on
        assert f'"Contact: <sip:" + $au + "@{lan}:10060>' in text
        assert f'$du = "sip:{VOICE_VIP}:5160";' in text
        trusted = re.findall(r'if \(\$si == "([0-9.]+)"\)', text)
        assert sorted(trusted) == sorted([*VOICES, VOICE_VIP])
        aliases = re.findall(r'^alias="(.+)"$', text, re.M)
        assert set(aliases) == {*APPS.values(), WEB_VIP}


def test_websocket_and_nat_handling(bundle) -> None:  # type: ignore[no-untyped-def]
    text = cfg(bundle, "app_2")
    for needed in ("fix_nated_register()", "add_contact_alias()", "handle_ruri_alias()", "ws_handle_handshake()",
                   "force_rport()", 'check_route_param("nat=yes")'):
        assert needed in text, needed
    assert modparams(text, "registrar")["received_avp"] == "$avp(RECEIVED)"
    assert modparams(text, "nathelper")["received_avp"] == "$avp(RECEIVED)"
    # TLS from the mounted certificate folder; nothing the image may lack
    tls = modparams(text, "tls")
    assert tls["certificate"] == "/etc/omnileads/certs/cert.pem"
    assert tls["private_key"] == "/etc/omnileads/certs/key.pem"
    assert "tls.cfg" not in text and "dispatcher" not in text


def test_app_side_addresses_are_the_nodes_own_in_ha(bundle) -> None:  # type: ignore[no-untyped-def]
    """HAProxy fronts only 80/443/6379: nginx and the omlapp family must reach this node's own
    Kamailio (14443) and websockets (8000), never the HAProxy VIP."""
    for host, lan in APPS.items():
        nginx = env(bundle, host, "/etc/default/nginx.env")
        assert nginx["KAMAILIO_HOSTNAME"] == lan and nginx["WEBSOCKETS_HOSTNAME"] == lan
        for name in ("django", "daphne", "omlcron"):
            path = next(f.path for f in bundle.host(host).files if f.path.startswith("/etc/default/")
                        and f.path.endswith(f"/{name}.env"))
            assert env(bundle, host, path)["KAMAILIO_HOSTNAME"] == lan, name
        assert env(bundle, host, "/etc/default/kamailio.env")["KAMAILIO_HOSTNAME"] == lan


@pytest.mark.parametrize(("layout", "host", "kamailio", "websockets"), [
    ("aio", "omnileads_aio", "localhost", None),
    ("ait", "omnileads_app", None, None),
])
def test_non_ha_addresses_are_unchanged(make_tenant: MakeTenant, layout: str, host: str,
                                        kamailio: str | None, websockets: str | None) -> None:
    tenant = make_tenant(layout)
    bundle = render_tenant(tenant)
    lan = next(h.lan_ip for h in tenant.hosts if h.name == host)
    nginx = env(bundle, host, "/etc/default/nginx.env")
    assert nginx["KAMAILIO_HOSTNAME"] == (kamailio or lan) and nginx["WEBSOCKETS_HOSTNAME"] == (websockets or lan)
    assert not any(f.path == CFG for f in bundle.host(host).files)  # the image's own config


@pytest.mark.parametrize("value", ['1.2.3.4"\nloadmodule "exec.so', "a b", "x;y", "host:5060", "", "1.2.3",
                                   'evil"', "ex\\ample.com", "-bad.example.com"])
def test_hostile_values_never_reach_the_config(value: str) -> None:
    with pytest.raises(ValueError, match=r"kamailio\.cfg"):
        cfg_address(value, "x")
    with pytest.raises(ValueError, match=r"kamailio\.cfg"):
        cfg_ip(value, "x")
    assert cfg_address("pbx.example.com", "x") == "pbx.example.com" and cfg_ip("10.0.0.1", "x") == "10.0.0.1"


def test_a_hostile_fact_stops_the_render(make_tenant: MakeTenant) -> None:
    """Even a value that slipped past the inventory rules (here: the Redis entry point) is refused."""
    placement = place(make_tenant("ha"))
    app = next(h for h in placement.tenant.hosts if h.name == "app_1")
    ctx = placement.ctx(app)
    hostile = dataclasses.replace(ctx, facts=dataclasses.replace(ctx.facts, redis_host='10.0.0.1:6379/1"\n#'))
    with pytest.raises(ValueError, match="redis_host"):
        COMPONENT.configs(hostile)
