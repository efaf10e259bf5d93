"""Promtail on every host with a Loki to push to: reads the journal, labels tenant/host/role/component/unit.

The Loki is the tenant's own (deployed on the data/AIO host, or `loki_host`), or a provider's central,
multi-tenant one (`loki_url`): then every push says `X-Scope-OrgID: <tenant>` (Promtail's `tenant_id`),
with basic auth from a 0600 file (grafana/promtail runs as root, which reads the journal).
"""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

PASSWORD_FILE = "/etc/omnileads/promtail/loki.pass"


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
        return ctx.facts.loki_push_url is not None and super().placed(ctx)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/etc/omnileads/promtail.yml", "/etc/promtail/promtail.yml", "ro"),
                Volume("oml_promtail", "/var/lib/promtail"),
                Volume("/var/log/journal", "/var/log/journal", "ro"),
                Volume("/run/log/journal", "/run/log/journal", "ro"),
                Volume("/etc/machine-id", "/etc/machine-id", "ro"),
                *([Volume(PASSWORD_FILE, "/etc/promtail/loki.pass", "ro")]
                  if ctx.tenant.settings.has("loki_password") else [])]

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
        s = ctx.tenant.settings
        content = self.template("promtail.yml.j2", ctx, units=units, push_url=ctx.facts.loki_push_url,
                                tenant_id=ctx.tenant.name if ctx.facts.loki_central else None,
                                user=s.opt("loki_user"), role=",".join(sorted(ctx.host.roles)) or "none")
        # /run is empty after a reboot: have systemd-tmpfiles recreate the volatile journal folder before
        # the unit starts ("-": an existing folder keeps journald's own mode and group)
        tmpfiles = "d /run/log/journal - - - -\n"
        out = [ConfigFile("/etc/omnileads/promtail.yml", content, 0o644),
               ConfigFile("/etc/tmpfiles.d/omldeploy-promtail.conf", tmpfiles, 0o644)]
        if s.has("loki_password"):
            out.append(ConfigFile(PASSWORD_FILE, s.text("loki_password"), 0o600, secret=True))
        return out


COMPONENT = Promtail()
