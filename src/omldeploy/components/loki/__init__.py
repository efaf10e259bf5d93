"""Loki on the data/AIO host, storing in a volume (the seed kept logs in the container's /tmp)."""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx
from omldeploy.inventory.values import duration_hours


class Loki(Component):
    name = "loki"
    description = "Loki (tenant logs)"
    image = "loki"
    container = "loki-server"
    env_file = None
    roles = ("aio", "data")
    groups = ("observability",)
    start_order = 94

    def placed(self, ctx: Ctx) -> bool:
        return ctx.facts.deploy_loki and super().placed(ctx)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/etc/omnileads/loki.yml", "/etc/loki/loki.yml", "ro"), Volume("oml_loki", "/loki")]

    def args(self, ctx: Ctx) -> list[str]:
        return ["-config.file=/etc/loki/loki.yml"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(3100, purpose="Loki", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=3100, path="/ready", timeout=120)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        hours = duration_hours(ctx.tenant.settings.text("loki_retention"))
        return [ConfigFile("/etc/omnileads/loki.yml", self.template("loki.yml.j2", ctx, retention_hours=hours),
                           0o644)]


COMPONENT = Loki()
