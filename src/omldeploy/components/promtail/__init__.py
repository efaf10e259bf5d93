"""Promtail on every host with a Loki to push to: reads the journal, labels tenant/host/role/component/unit."""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx


class Promtail(Component):
    name = "promtail"
    description = "Promtail (ships logs to Loki)"
    image = "promtail"
    container = "promtail-server"
    env_file = None
    roles = ("aio", "data", "voice", "app", "haproxy")
    depends_on = ("loki",)
    groups = ("observability",)
    start_order = 95

    def placed(self, ctx: Ctx) -> bool:
        return ctx.facts.loki_host is not None and super().placed(ctx)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/etc/omnileads/promtail.yml", "/etc/promtail/promtail.yml", "ro"),
                Volume("oml_promtail", "/var/lib/promtail"),
                Volume("/var/log/journal", "/var/log/journal", "ro"),
                Volume("/run/log/journal", "/run/log/journal", "ro"),
                Volume("/etc/machine-id", "/etc/machine-id", "ro")]

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        # journald keeps its journal in one of the two (persistent or volatile storage); a host may lack
        # the other, and a missing bind-mount source stops the container. Creating /var/log/journal
        # makes journald keep the journal on disk from its next start, which log shipping wants anyway.
        return [("/var/log/journal", 0o2755), ("/run/log/journal", 0o2755)]

    def args(self, ctx: Ctx) -> list[str]:
        return ["-config.file=/etc/promtail/promtail.yml"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9080, purpose="Promtail", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9080, path="/ready")

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        units = [f"{c}.service" for c in ctx.placement.components(ctx.host.name)]
        content = self.template("promtail.yml.j2", ctx, units=units, loki=ctx.facts.loki_host,
                                role=",".join(sorted(ctx.host.roles)) or "none")
        # /run is empty after a reboot: have systemd-tmpfiles recreate the volatile journal folder before
        # the unit starts ("-": an existing folder keeps journald's own mode and group)
        tmpfiles = "d /run/log/journal - - - -\n"
        return [ConfigFile("/etc/omnileads/promtail.yml", content, 0o644),
                ConfigFile("/etc/tmpfiles.d/omldeploy-promtail.conf", tmpfiles, 0o644)]


COMPONENT = Promtail()
