"""Redis Sentinel (HA): both voice nodes, the backup app node and the main haproxy node (quorum 2).

Runs `redis-sentinel` from the Redis image (the seed pulled one image and ran another). Sentinel
rewrites its config at runtime, so the rendered file is copied into the container's volume at start
and the file on the host stays as rendered (no false "changed" on the next run).
"""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx


class Sentinel(Component):
    name = "sentinel"
    description = "Redis Sentinel"
    image = "redis"
    container = "oml-sentinel-server"
    env_file = "/etc/default/sentinel.env"
    groups = ("redis", "sentinel")
    start_order = 35

    def placed(self, ctx: Ctx) -> bool:
        if ctx.tenant.layout.shape.value != "ha":
            return False
        h = ctx.host
        return ("voice" in h.roles or ("app" in h.roles and h.ha_role == "backup")
                or ("haproxy" in h.roles and h.ha_role == "main"))

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return [
            ("BIND_IP", ctx.lan),
            ("MAIN", ctx.tenant.settings.text("redis_ip_main")),
            ("SENTINEL_QUORUM", "2"),
            ("SENTINEL_DOWN_AFTER", "3000"),
            ("SENTINEL_FAILOVER", "6000"),
        ]

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("oml_sentinel", "/data"),
                Volume("/etc/omnileads/sentinel.conf", "/etc/omnileads/sentinel.conf", "ro")]

    def args(self, ctx: Ctx) -> list[str]:
        return ["sh", "-c", "cp /etc/omnileads/sentinel.conf /data/sentinel.conf && "
                "exec redis-sentinel /data/sentinel.conf"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(26379, purpose="Sentinel")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan, port=26379)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        return [ConfigFile("/etc/omnileads/sentinel.conf", self.template("sentinel.conf.j2", ctx), 0o644)]


COMPONENT = Sentinel()
