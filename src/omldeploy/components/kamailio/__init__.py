"""Kamailio SIP proxy for WebRTC agents (app/AIO host; both app nodes in HA with a rendered cfg)."""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx


class Kamailio(Component):
    name = "kamailio"
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
            ("KAMAILIO_HOSTNAME", f.kamailio_host if ctx.tenant.layout.shape.value == "aio" else ctx.lan),
            ("KAMAILIO_CERTS_LOCATION", "/etc/omnileads/certs"),
            ("REDIS_HOSTNAME", f.redis_host),
            ("SHM_SIZE", str(s.num("shm_size"))),
            ("PKG_SIZE", str(s.num("pkg_size"))),
        ]
        if ctx.tenant.layout.shape.value == "ha":
            voices = sorted(ctx.tenant.with_role("voice"), key=lambda h: h.ha_role != "main")
            env.append(("ASTERISK_HOSTNAME", f.voice_host))
            for i, h in enumerate(voices, start=1):
                env += [(f"ASTERISK_HOSTNAME_NODE_{i}", h.lan_ip), (f"RTPENGINE_HOSTNAME_NODE_{i}", h.lan_ip)]
        else:
            env += [("RTPENGINE_HOSTNAME", f.rtpengine_host), ("ASTERISK_HOSTNAME", f.asterisk_host)]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        vols = [Volume("/etc/omnileads/certs", "/etc/omnileads/certs")]
        if ctx.tenant.layout.shape.value == "ha":
            vols.append(Volume("/etc/omnileads/kamailio.cfg", "/etc/kamailio/kamailio.cfg", "ro"))
        return vols

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(14443, purpose="WSS (via nginx)"), Port(5080, "udp", "SIP")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan if ctx.tenant.layout.shape.value != "aio" else "localhost",
                      port=14443)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if ctx.tenant.layout.shape.value != "ha":
            return []
        voices = sorted(ctx.tenant.with_role("voice"), key=lambda h: h.ha_role != "main")
        content = self.template("kamailio.cfg.j2", ctx, voices=voices,
                                auth_secret=ctx.secrets["kamailio_auth_secret"])
        return [ConfigFile("/etc/omnileads/kamailio.cfg", content, 0o600, secret=True)]


COMPONENT = Kamailio()
