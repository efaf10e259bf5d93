"""Asterisk on the voice/AIO host (both voice nodes in HA, the VIP moved by keepalived)."""

from __future__ import annotations

from omldeploy.components import common, redis_auth
from omldeploy.components.base import CallCounter, Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

CUSTOM_DIR = "/etc/asterisk/custom"
#: the media range (README of the seed: "20000/50000 UDP Asterisk & RTPengine", open to the Internet)
RTP_FIRST, RTP_LAST = 20000, 50000
# Skeleton dialplan files the seed created; created only when missing, never overwritten.
CUSTOM_FILES = ("oml_extensions_custom.conf", "oml_extensions_bridgecall_custom.conf",
                "oml_extensions_commonsub_custom.conf", "oml_modules_custom.conf",
                "oml_extensions_postcall_custom.conf", "oml_extensions_precall_custom.conf")


class Asterisk(Component):
    name = "asterisk"
    description = "Asterisk PBX"
    image = "asterisk"
    container = "oml-asterisk-server"
    env_file = "/etc/default/asterisk.env"
    roles = ("aio", "voice")
    groups = ("voice", "asterisk", "restart", "restart_core", "restart_asterisk")
    start_order = 60
    drops_calls = True

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        f = ctx.facts
        ha = ctx.tenant.layout.shape.value == "ha"
        homer = s.opt("homer_host")
        env = [
            ("ENV", f"systemd-{s.text('infra_env')}"),
            ("FULL_LOGS", "false"),
            ("TZ", s.text("TZ")),
            ("ASTERISK_LOCATION", ""),
            ("ASTERISK_PUBLIC_IP", f.omni_ip_wan),
            ("AMI_USER", s.text("ami_user")),
            ("AMI_PASSWORD", s.text("ami_password")),
            ("OMNILEADS_HOSTNAME", f.nginx_host),
            ("REDIS_HOSTNAME", f.redis_host),
            *redis_auth.client_env(ctx),
            *common.pg_client(ctx),
            ("PGSSL", "true" if s.flag("postgres_ssl") else "false"),
            # HEP only when a Homer exists (the seed sent it to its own host where nothing listened).
            ("HOMER_ENABLE", "true" if homer else "false"),
            ("HOMERHOST", homer or ""),
            ("HOMERPORT", "9060"),
            *common.s3(ctx, browser=False),
            ("DEPLOY_HA", "True" if ha else "false"),
            ("ASTERISK_HOSTNAME", f.voice_host if ha else ctx.lan),
            ("HOSTNAME", ctx.lan),
            *common.fastagi(ctx),  # the dialplan's AGI() calls go there (releases with fastagi)
        ]
        return env

    def pre_start(self, ctx: Ctx) -> list[str]:
        # Asterisk is the first database client to start on voice/AIO hosts
        return common.database_hooks(ctx, self.env_file or "")

    def hook_images(self, ctx: Ctx) -> list[str]:
        return [ctx.image("postgres")]

    def volumes(self, ctx: Ctx) -> list[Volume]:
        # the custom dialplan is the operator's: Asterisk only reads it (issue 12 M6)
        return [Volume(CUSTOM_DIR, CUSTOM_DIR, "ro"), Volume("asterisk_logs", "/var/log/asterisk", "rw")]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(5060, "udp", "SIP trunks", reach="sip"), Port(5160, "udp", "SIP from Kamailio"),
                Port(5038, purpose="AMI"), Port(7088, purpose="metrics", reach="monitoring"),
                # the media range of Asterisk AND RTPengine (image-defined; the seed README opens
                # 20000-50000 to the Internet), declared once here: both run on the voice host
                Port(RTP_FIRST, "udp", "RTP (Asterisk and RTPengine)", reach="public", last=RTP_LAST)]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan, port=5038, timeout=120)

    def call_counter(self, ctx: Ctx) -> CallCounter | None:
        return CallCounter(self.env_file or "", ctx.lan, 5038)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        header = self.template("custom.conf.j2", ctx)
        return [ConfigFile(f"{CUSTOM_DIR}/{name}", header, 0o644, only_if_missing=True) for name in CUSTOM_FILES]


COMPONENT = Asterisk()
