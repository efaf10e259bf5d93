"""Prometheus on the app/AIO host: scrapes the tenant's exporters, labelled by tenant/host/component.

No `--web.enable-lifecycle` (the seed exposed an unauthenticated shutdown API on 9090).
"""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

TARGETS = (
    ("prometheus_node_exporter", 9100, "host"),
    ("prometheus_postgres", 9187, "postgres"),
    ("prometheus_redis", 9121, "redis"),
    ("asterisk", 7088, "asterisk"),
)


def role_label(roles: frozenset[str]) -> str:
    """A host's roles as one label value (`aio`, `data`, `app,haproxy`): stable, sorted."""
    return ",".join(sorted(roles)) or "none"


class Prometheus(Component):
    name = "prometheus"
    description = "Prometheus (tenant metrics)"
    image = "prometheus"
    container = "prometheus-server"
    env_file = None
    roles = ("aio", "app")
    groups = ("observability",)
    start_order = 96

    def placed(self, ctx: Ctx) -> bool:
        if ctx.tenant.layout.shape.value == "ha":
            return "app" in ctx.host.roles and ctx.host.ha_role == "main"
        return super().placed(ctx)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/etc/omnileads/prometheus.yml", "/etc/prometheus/prometheus.yml", "ro"),
                Volume("prometheus_data", "/prometheus")]

    def args(self, ctx: Ctx) -> list[str]:
        return ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=30d", f"--web.listen-address={ctx.lan}:9090"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9090, purpose="Prometheus", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9090, path="/-/ready")

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        jobs = []
        for comp, port, label in TARGETS:
            for h in ctx.hosts_running(comp):
                jobs.append({"job": f"{ctx.tenant.name}_{h.name}_{label}", "target": f"{h.lan_ip}:{port}",
                             "host": h.name, "role": role_label(h.roles), "component": label})
        content = self.template("prometheus.yml.j2", ctx, jobs=jobs, role=role_label(ctx.host.roles))
        return [ConfigFile("/etc/omnileads/prometheus.yml", content, 0o644)]


COMPONENT = Prometheus()
