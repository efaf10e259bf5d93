"""RTPengine: WebRTC media relay on the voice/AIO host (skipped when `rtpengine_host` is external)."""

from __future__ import annotations

from omldeploy.components.base import Component, Health, Port
from omldeploy.components.context import Ctx


class RTPengine(Component):
    name = "rtpengine"
    drops_calls = True  # a restart drops the host's calls (activate drains them first)
    description = "RTPengine media relay"
    image = "rtpengine"
    container = "oml-rtpengine-server"
    env_file = "/etc/default/rtpengine.env"
    roles = ("aio", "voice")
    groups = ("voice", "rtpengine", "restart")
    start_order = 40
    capabilities = ("NET_ADMIN", "SYS_NICE")

    def placed(self, ctx: Ctx) -> bool:
        return not ctx.tenant.settings.has("rtpengine_host") and super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        return [
            ("RTPENGINE_HOSTNAME", ctx.lan),
            ("ENV", f"systemd-{s.text('infra_env')}"),
            ("WAN_IP", ctx.facts.omni_ip_wan),
            ("TZ", s.text("TZ")),
        ]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(22222, "udp", "control (Kamailio)")]  # + RTP range: declared by Asterisk (shared)

    def health(self, ctx: Ctx) -> Health:
        return Health("active")


COMPONENT = RTPengine()
