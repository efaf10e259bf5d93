"""Prometheus on the app/AIO host: scrapes the tenant's exporters, labelled by tenant/host/component.

No `--web.enable-lifecycle` (the seed exposed an unauthenticated shutdown API on 9090). With
`prometheus_remote_write_url` every sample also goes to a central Prometheus/Mimir: how a provider
sees its fleet in one place. Its password is a file that only the image's user (nobody) can read.
"""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

#: the user prom/prometheus runs as (USER nobody): the owner of the remote-write password file
IMAGE_UID = 65534
PASSWORD_FILE = "/etc/omnileads/prometheus/remote_write.pass"

TARGETS = (
    ("prometheus_node_exporter", 9100, "host"),
    ("prometheus_postgres", 9187, "postgres"),
    ("prometheus_redis", 9121, "redis"),
    ("asterisk", 7088, "asterisk"),
    ("haproxy", 8404, "haproxy"),  # HA: HAProxy's built-in exporter (frontend metrics)
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
        # HA: on both app nodes, each scraping every target, so that losing one hypervisor keeps the
        # tenant's metrics (the `replica` external label tells their series apart)
        if ctx.tenant.layout.shape.value == "ha":
            return "app" in ctx.host.roles
        return super().placed(ctx)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        out = [Volume("/etc/omnileads/prometheus.yml", "/etc/prometheus/prometheus.yml", "ro"),
               Volume("prometheus_data", "/prometheus")]
        if ctx.tenant.settings.has("prometheus_remote_write_password"):
            out.append(Volume(PASSWORD_FILE, "/etc/prometheus/remote_write.pass", "ro"))
        return out

    def args(self, ctx: Ctx) -> list[str]:
        s = ctx.tenant.settings
        listen = ctx.lan if s.text("prometheus_listen") == "lan" else "0.0.0.0"
        return ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                f"--storage.tsdb.retention.time={s.text('prometheus_retention')}",
                f"--web.listen-address={listen}:9090"]

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
        s = ctx.tenant.settings
        remote = None
        if s.has("prometheus_remote_write_url"):
            remote = {"url": s.text("prometheus_remote_write_url"), "user": s.opt("prometheus_remote_write_user"),
                      "password_file": "/etc/prometheus/remote_write.pass"
                      if s.has("prometheus_remote_write_password") else None}
        content = self.template("prometheus.yml.j2", ctx, jobs=jobs, role=role_label(ctx.host.roles),
                                remote=remote)
        out = [ConfigFile("/etc/omnileads/prometheus.yml", content, 0o644)]
        if s.has("prometheus_remote_write_password"):
            out.append(ConfigFile(PASSWORD_FILE, s.text("prometheus_remote_write_password"), 0o600, secret=True,
                                  owner=IMAGE_UID))
        return out


COMPONENT = Prometheus()
