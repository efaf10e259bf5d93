"""Kamailio SIP proxy for WebRTC agents (app/AIO host; both app nodes in HA with a rendered cfg).

AIO/AIT run the image's own kamailio.cfg, configured by env. HA mounts a config rendered here
(`kamailio.cfg.j2`), because the image's config knows one Asterisk and one rtpengine while HA has a
voice pair behind a VIP. That config must behave towards the app, Asterisk and rtpengine exactly like
the image's one does, so the two differ only in what HA needs:

- the same ephemeral-credential secret as the app (`APP_SIP_SECRET`), the same SIP port (10060) in
  the listener and in the contact registered at Asterisk, the same rtpengine offer/answer flags;
- both voice nodes (and the voice VIP) are trusted Asterisk sources, both rtpengines are used;
- registrations are kept in Redis db 1 through the Redis entry point (the HAProxy VIP, which follows
  the master), tagged with this node's `server_id`, so both nodes share one store;
- it binds the node's own address (nginx of the same node proxies WSS to it) and reads TLS material
  from the mounted certificate folder, not from files the image may or may not carry.
"""

from __future__ import annotations

import ipaddress
import re

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx
from omldeploy.inventory.model import Host

# OMniLeads' Django settings hard-code `SIP_SECRET_KEY = 'SUp3rS3cr3tK3y'` and derive each agent's
# ephemeral SIP password from it (`base64(hmac-sha1(key, "<expiry>:<extension>"))`); no env var
# passes another key to the app, and the image's own kamailio.cfg (AIO/AIT) uses the same literal.
# Any other value here makes every WebRTC REGISTER fail authentication, so it is a constant of the
# app, not a per-tenant secret.
APP_SIP_SECRET = "SUp3rS3cr3tK3y"
SIP_PORT = 10060  # UDP leg to Asterisk: the image's port, listened on AND put in the contact at Asterisk
WSS_PORT = 14443  # nginx proxies the agents' WSS here
ASTERISK_PORT = 5160  # Asterisk's SIP leg for Kamailio
RTPENGINE_PORT = 22222  # rtpengine ng control
REDIS_USRLOC_DB = 1  # the seed's usrloc database in Redis

_HOSTNAME = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")  # \Z: `$` lets "x\n" in


def cfg_address(value: str, what: str) -> str:
    """`value` if it is an IP address or a DNS name, else ValueError.

    Every inventory value that reaches kamailio.cfg goes through here even though the inventory
    loader already validated it: the config is a program (`#!define`, `listen=`, string literals), so
    a quote, a space or a newline smuggled in would change what Kamailio runs, not just a value."""
    text = str(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.match(text) or text.replace(".", "").isdigit():
        raise ValueError(f"kamailio.cfg: {what} {text!r} is not an IP address or host name")
    return text


def cfg_ip(value: str, what: str) -> str:
    """`value` if it is an IP address (for `listen=` and source checks), else ValueError."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ValueError(f"kamailio.cfg: {what} {value!r} is not an IP address") from None


def _ha_cfg(ctx: Ctx) -> bool:
    """The rendered HA config (registrations shared in Redis, two Asterisk/RTPengine) is the seed's
    8-host HA. Two-node HA (HEAD) runs the image's own config on each node, as HEAD does: a failover
    moves the VIP, the agents' WebSockets reconnect to the other node and register there."""
    return ctx.tenant.layout.shape.value == "ha" and not ctx.tenant.layout.two_node


def _pair(ctx: Ctx, role: str) -> list[Host]:
    """The two hosts of an HA pair, main first (the order the seed's NODE_1/NODE_2 used)."""
    return sorted(ctx.tenant.with_role(role), key=lambda h: (h.ha_role != "main", h.name))


class Kamailio(Component):
    name = "kamailio"
    drops_calls = True  # a restart drops the host's calls (activate drains them first)
    description = "Kamailio SIP proxy"
    image = "kamailio"
    container = "oml-kamailio-server"
    env_file = "/etc/default/kamailio.env"
    roles = ("aio", "app")
    depends_on = ("redis",)
    groups = ("app", "kamailio", "restart")
    start_order = 70

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        f = ctx.facts
        env = [
            ("KAMAILIO_HOSTNAME", ctx.kamailio_host),
            ("KAMAILIO_CERTS_LOCATION", "/etc/omnileads/certs"),
            ("REDIS_HOSTNAME", f.redis_host),
            *redis_auth.client_env(ctx),
            ("SHM_SIZE", str(s.num("shm_size"))),
            ("PKG_SIZE", str(s.num("pkg_size"))),
        ]
        if _ha_cfg(ctx):
            env.append(("ASTERISK_HOSTNAME", f.voice_host))
            for i, h in enumerate(_pair(ctx, "voice"), start=1):
                env += [(f"ASTERISK_HOSTNAME_NODE_{i}", h.lan_ip), (f"RTPENGINE_HOSTNAME_NODE_{i}", h.lan_ip)]
        elif ctx.tenant.layout.two_node:
            # the image's own config, with this node's RTPengine and Asterisk (the VIP may be elsewhere)
            rtpengine = f.rtpengine_host if ctx.tenant.settings.has("rtpengine_host") else ctx.lan
            env += [("RTPENGINE_HOSTNAME", rtpengine), ("ASTERISK_HOSTNAME", ctx.lan)]
        else:
            env += [("RTPENGINE_HOSTNAME", f.rtpengine_host), ("ASTERISK_HOSTNAME", f.asterisk_host)]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        vols = [Volume("/etc/omnileads/certs", "/etc/omnileads/certs", "ro")]  # only read (issue 12 M6)
        if _ha_cfg(ctx):
            vols.append(Volume("/etc/omnileads/kamailio.cfg", "/etc/kamailio/kamailio.cfg", "ro"))
        return vols

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(WSS_PORT, purpose="WSS (via nginx)"), Port(SIP_PORT, "udp", "SIP (Asterisk leg)")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan if ctx.tenant.layout.shape.value != "aio" else "localhost",
                      port=WSS_PORT)

    def cfg_values(self, ctx: Ctx) -> dict[str, object]:
        """Everything the HA template needs, validated (see `cfg_address`). Public so tests can assert
        the wiring without parsing the config back."""
        s = ctx.tenant.settings
        f = ctx.facts
        apps = _pair(ctx, "app")
        voices = _pair(ctx, "voice")
        me = ctx.host
        # names an agent's request may carry as its domain: either app node (each Django tells the
        # browser its own node), the HAProxy VIP and the public name
        aliases = [cfg_address(h.lan_ip, f"{h.name}.omni_ip_lan") for h in apps]
        aliases.append(cfg_address(f.application_host, "application_host"))
        if s.has("fqdn"):
            aliases.append(cfg_address(s.text("fqdn"), "fqdn"))
        return {
            "lan": cfg_ip(me.lan_ip, f"{me.name}.omni_ip_lan"),
            "server_id": next(i for i, h in enumerate(apps, start=1) if h.name == me.name),
            "aliases": list(dict.fromkeys(aliases)),
            "asterisk_vip": cfg_address(f.voice_host, "voice_host"),
            "asterisk_sources": list(dict.fromkeys(
                [cfg_ip(h.lan_ip, f"{h.name}.omni_ip_lan") for h in voices]
                + ([cfg_ip(f.voice_host, "voice_host")] if _is_ip(f.voice_host) else []))),
            "rtpengine_sock": " ".join(f"udp:{cfg_ip(h.lan_ip, f'{h.name}.omni_ip_lan')}:{RTPENGINE_PORT}"
                                       for h in voices),
            "usrloc_db_url": self._usrloc_db_url(ctx),
            "secret": APP_SIP_SECRET,
            "sip_port": SIP_PORT,
            "wss_port": WSS_PORT,
            "asterisk_port": ASTERISK_PORT,
            "certs": "/etc/omnileads/certs",
        }

    @staticmethod
    def _usrloc_db_url(ctx: Ctx) -> str:
        """Redis db 1 through the Redis entry point; in the seed's HA with `user:password@`, from which
        db_redis sends AUTH (Redis without ACLs ignores the user; the password is hex, so it needs no
        URL encoding). The address is validated first: a hostile one stops the render."""
        address = cfg_address(ctx.facts.redis_host, "redis_host")
        credentials = f"default:{redis_auth.password(ctx)}@" if redis_auth.enabled(ctx) else ""
        return f"redis://{credentials}{address}:6379/{REDIS_USRLOC_DB}"

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if not _ha_cfg(ctx):
            return []
        content = self.template("kamailio.cfg.j2", ctx, **self.cfg_values(ctx))
        return [ConfigFile("/etc/omnileads/kamailio.cfg", content, 0o600, secret=True)]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


COMPONENT = Kamailio()
