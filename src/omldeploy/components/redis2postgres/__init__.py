"""Enterprise add-on copying Redis events to PostgreSQL (app hosts; AIO too, unlike the seed)."""

from __future__ import annotations

from omldeploy.components.base import Component, Health
from omldeploy.components.context import Ctx


class Redis2Postgres(Component):
    name = "redis2postgres"
    description = "Enterprise add-on: Redis to PostgreSQL"
    image = "redis2postgres"
    container = "oml-redis2postgres-server"
    env_file = "/etc/default/django.env"  # shares the web app's env, as in the seed
    owns_env_file = False
    roles = ("aio", "app")
    depends_on = ("omnileads",)
    groups = ("app",)
    start_order = 87

    def placed(self, ctx: Ctx) -> bool:
        return ctx.tenant.settings.flag("enterprise_edition") and super().placed(ctx)

    def health(self, ctx: Ctx) -> Health:
        return Health("active")


COMPONENT = Redis2Postgres()
