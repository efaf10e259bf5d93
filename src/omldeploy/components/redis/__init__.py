"""Redis (data/AIO host; in HA a main/replica pair on the app nodes behind HAProxy + Sentinel)."""

from __future__ import annotations

from omldeploy.components.base import Component, Health, Port, Volume
from omldeploy.components.context import Ctx


def bind_address(ctx: Ctx) -> str:
    """AIO keeps Redis on localhost; AIT/HA bind the host's own LAN address (never a VIP)."""
    return "localhost" if ctx.tenant.layout.shape.value == "aio" else ctx.lan


class Redis(Component):
    name = "redis"
    description = "Redis"
    image = "redis"
    container = "oml-redis-server"
    env_file = "/etc/default/redis.env"
    roles = ("aio", "data")
    groups = ("redis", "restart")
    start_order = 30

    def placed(self, ctx: Ctx) -> bool:
        if ctx.tenant.layout.shape.value == "ha":
            return "app" in ctx.host.roles
        return super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        env = [("REDISGEARS_VERSION", "1.0.9"), ("BIND_IP", bind_address(ctx))]
        if ctx.tenant.layout.shape.value == "ha":
            main = ctx.tenant.settings.text("redis_ip_main")
            env += [("ROLE", "main" if ctx.lan == main else "replica"), ("MAIN", main)]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("oml_redis", "/data")]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(6379, purpose="Redis")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=bind_address(ctx), port=6379)


COMPONENT = Redis()
