"""OMniLeads websockets service (app/AIO host). Depends on Redis by its real unit name."""

from __future__ import annotations

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, Health, Port
from omldeploy.components.context import Ctx


class Websockets(Component):
    name = "websockets"
    description = "OMniLeads websockets"
    image = "websockets"
    container = "oml-websockets-server"
    env_file = "/etc/default/websockets.env"
    roles = ("aio", "app")
    depends_on = ("redis",)
    groups = ("app", "websockets", "restart")
    wanted_by = "multi-user.target"
    start_order = 75

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        if ctx.tenant.layout.shape.value == "ha" and not ctx.tenant.layout.two_node:
            sentinels = ",".join(h.lan_ip for h in ctx.hosts_running("sentinel"))
            redis = f"redis+sentinel://master/{sentinels}"
        else:
            redis = f"redis://{ctx.facts.redis_host}"
        return [
            ("EVENT_LOOP", "uvloop"),
            ("LOGGERS", "DEBUG:fts.oml.services.websockets;INFO:websockets.server"),
            ("DEBUG_EVENT_LOOP", "off"),
            ("BIND_ADDRESS", f"{ctx.lan}:8000"),
            ("REDIS_HOST", redis),
            *redis_auth.client_env(ctx),  # for the Sentinels and the master they name
        ]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(8000, purpose="websockets (via nginx)")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan, port=8000)


COMPONENT = Websockets()
