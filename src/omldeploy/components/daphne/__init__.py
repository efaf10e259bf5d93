"""Daphne (Django Channels/ASGI) from the same omlapp image as uwsgi."""

from __future__ import annotations

from omldeploy.components import common
from omldeploy.components.base import Component, Health, Port
from omldeploy.components.context import Ctx


class Daphne(Component):
    name = "daphne"
    description = "OMniLeads ASGI server (daphne)"
    image = "omlapp"
    container = "oml-daphne-server"
    env_file = "/etc/default/daphne.env"
    roles = ("aio", "app")
    depends_on = ("omnileads",)
    groups = ("app", "restart", "restart_core", "restart_django")
    start_order = 86

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return common.omlapp(ctx, "daphne")

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(8098, purpose="daphne (via nginx)")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host="localhost", port=8098, timeout=180)


COMPONENT = Daphne()
