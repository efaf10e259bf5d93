"""Node exporter on every host (with --path.rootfs, which the seed's mount lacked).

Its systemd collector reports the state of the tenant's own units on the host (node_systemd_unit_state),
read from systemd over the host's D-Bus socket: that is how the central Grafana shows "units up" with
no container exporter (none can be obtained as a pinned image here; Podman's own exporter is not in the
catalog). Only the units omldeploy placed on the host are included, so a fleet dashboard counts the
tenant's units, not the host's every service.
"""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
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
        return [Volume("/", "/host", "ro,rslave"),
                Volume("/run/dbus", "/var/run/dbus", "ro")]

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        # The folder, not the socket: a socket bind-mounted by itself goes stale when dbus restarts. A host
        # without dbus still starts the exporter (Podman refuses a missing mount source); only the systemd
        # collector then reports a scrape error.
        return [("/run/dbus", 0o755)]

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        # /run is empty after a reboot: recreate the folder before the unit starts ("-": dbus's own mode wins)
        return [ConfigFile("/etc/tmpfiles.d/omldeploy-node-exporter.conf", "d /run/dbus - - - -\n", 0o644)]

    def args(self, ctx: Ctx) -> list[str]:
        units = "|".join(sorted(ctx.placement.components(ctx.host.name)))
        return ["--path.rootfs=/host", f"--web.listen-address={ctx.lan}:9100", "--collector.systemd",
                f"--collector.systemd.unit-include=({units})[.]service"]

    def podman_options(self, ctx: Ctx) -> list[str]:
        return ["--pid=host"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9100, purpose="metrics", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9100, path="/metrics")


COMPONENT = NodeExporter()
