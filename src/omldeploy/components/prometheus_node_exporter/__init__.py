"""Node exporter on every host (with --path.rootfs, which the seed's mount lacked)."""

from __future__ import annotations

from omldeploy.components.base import Component, Health, Port, Volume
from omldeploy.components.context import Ctx


class NodeExporter(Component):
    name = "prometheus_node_exporter"
    description = "Prometheus node exporter"
    image = "node_exporter"
    container = "oml-prometheus_node_exporter-server"
    env_file = "/etc/default/prometheus_node_exporter.env"
    roles = ("aio", "data", "voice", "app", "haproxy")
    groups = ("observability",)
    start_order = 5

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/", "/host", "ro,rslave")]

    def args(self, ctx: Ctx) -> list[str]:
        return ["--path.rootfs=/host", f"--web.listen-address={ctx.lan}:9100"]

    def podman_options(self, ctx: Ctx) -> list[str]:
        return ["--pid=host"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9100, purpose="metrics", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9100, path="/metrics")


COMPONENT = NodeExporter()
