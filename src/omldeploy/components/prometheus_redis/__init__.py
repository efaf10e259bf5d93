"""Redis exporter, next to Redis (targets the address Redis binds)."""

from __future__ import annotations

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, Health, Port
from omldeploy.components.context import Ctx
from omldeploy.components.redis import COMPONENT as REDIS
from omldeploy.components.redis import bind_address


class RedisExporter(Component):
    name = "prometheus_redis"
    description = "Prometheus exporter for Redis"
    image = "redis_exporter"
    container = "oml-prometheus-redis"
    env_file = "/etc/default/prometheus_redis.env"
    depends_on = ("redis",)
    groups = ("redis", "observability")
    start_order = 31

    def placed(self, ctx: Ctx) -> bool:
        return REDIS.placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return [("REDIS_ADDR", f"{bind_address(ctx)}:6379"),
                ("REDIS_EXPORTER_WEB_LISTEN_ADDRESS", f"{ctx.lan}:9121"), *redis_auth.client_env(ctx)]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9121, purpose="metrics", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9121, path="/metrics")


COMPONENT = RedisExporter()
