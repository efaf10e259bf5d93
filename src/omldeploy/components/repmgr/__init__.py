"""repmgrd (HA data nodes): watches the local PostgreSQL and its peer, and promotes the standby when
the primary is gone (`failover=automatic` in repmgr.conf).

As upstream HEAD: its own unit `repmgr.service`, container `oml-repmgr-server`, the HA PostgreSQL image
running `repmgrd` in the foreground as user postgres. It starts after PostgreSQL (whose start hooks
register the node), so repmgrd never watches an unregistered node.
"""

from __future__ import annotations

from omldeploy.components.base import Component, Volume
from omldeploy.components.context import Ctx
from omldeploy.components.postgresql import PGPASSFILE, repmgr_volumes


class Repmgr(Component):
    name = "repmgr"
    description = "repmgrd (PostgreSQL automatic failover)"
    image = "postgres"
    container = "oml-repmgr-server"
    env_file = None
    roles = ("data",)
    depends_on = ("postgresql",)
    groups = ("postgres",)
    start_order = 22

    def placed(self, ctx: Ctx) -> bool:
        return (ctx.tenant.layout.shape.value == "ha" and ctx.facts.deploy_postgres
                and bool(ctx.host.ha_role) and super().placed(ctx))

    def volumes(self, ctx: Ctx) -> list[Volume]:
        # the data directory too: `repmgr standby promote` (run by repmgrd) checks it
        return [Volume("oml_postgres", "/var/lib/postgresql/data"), *repmgr_volumes()]

    def podman_options(self, ctx: Ctx) -> list[str]:
        return ["--user=postgres", f"--env=PGPASSFILE={PGPASSFILE}"]

    def args(self, ctx: Ctx) -> list[str]:
        return ["repmgrd", "-f", "/etc/repmgr.conf", "--daemonize=false", "--no-pid-file"]


COMPONENT = Repmgr()
