"""repmgrd (HA data nodes): watches the local PostgreSQL and its peer, and promotes the standby when
the primary is gone (`failover=automatic` in repmgr.conf).

As upstream HEAD: its own unit `repmgr.service`, container `oml-repmgr-server`, the HA PostgreSQL image
running `repmgrd` in the foreground as user postgres. It starts after PostgreSQL (whose start hooks
register the node), so repmgrd never watches an unregistered node.

Beside it, on the host, the split-brain guard (`oml-pg-guard.service`, oml_pg_guard.py): repmgrd
promotes, the guard fences an old primary that comes back or is cut off (see its docstring).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from omldeploy.components.base import Component, ConfigFile, HostUnit, Volume
from omldeploy.components.context import Ctx
from omldeploy.components.postgresql import (
    FENCE_FILE,
    GUARD,
    GUARD_CONF,
    GUARD_DIR,
    GUARD_OK,
    PGPASS,
    PGPASSFILE,
    SOCKET_DIR,
    repmgr_volumes,
    witnesses,
)


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

    def _guard_files(self) -> tuple[str, str]:
        folder = resources.files("omldeploy.components")
        return (folder.joinpath("repmgr", "oml_pg_guard.py").read_text(),
                folder.joinpath("postgresql", "oml_pgwire.py").read_text())

    def guard_config(self, ctx: Ctx) -> dict[str, object]:
        s = ctx.tenant.settings
        peer = next(h for h in ctx.tenant.hosts if "data" in h.roles and h.name != ctx.host.name)
        return {
            "node": ctx.host.name, "ha_role": ctx.host.ha_role, "peer": peer.lan_ip, "peer_name": peer.name,
            "witnesses": witnesses(ctx), "socket": f"{SOCKET_DIR}/.s.PGSQL.5432",
            "user": s.text("postgres_user"), "db": s.text("postgres_maintenance_db"), "pgpass": PGPASS,
            "fence_file": FENCE_FILE, "ok_file": GUARD_OK,
            "fence_commands": [["podman", "kill", "--signal", "SIGINT", "oml-postgresql-server"],
                               ["systemctl", "stop", "repmgr.service", "postgresql.service"]],
        }

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        guard, wire = self._guard_files()
        return [ConfigFile(GUARD, guard, 0o755), ConfigFile(f"{GUARD_DIR}/oml_pgwire.py", wire, 0o644),
                ConfigFile(GUARD_CONF, json.dumps(self.guard_config(ctx), indent=1) + "\n", 0o644)]

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        return [(GUARD_DIR, 0o755)]

    def host_units(self, ctx: Ctx) -> list[HostUnit]:
        """The guard runs on the host: it must outlive the PostgreSQL container it stops, and read the
        repmgr password file without copying it anywhere. Its unit carries the scripts' digest, so a new
        guard version restarts it."""
        guard, wire = self._guard_files()
        digest = hashlib.sha256((guard + wire + json.dumps(self.guard_config(ctx))).encode()).hexdigest()[:16]
        unit = (f"# PostgreSQL split-brain guard for tenant {ctx.tenant.name}, rendered by omldeploy "
                f"(scripts {digest})\n"
                "[Unit]\n"
                f"Description=PostgreSQL split-brain guard (tenant {ctx.tenant.name})\n"
                "After=network-online.target\nWants=network-online.target\n\n"
                "[Service]\n"
                f"ExecStart=/usr/bin/python3 {GUARD} run {GUARD_CONF}\n"
                "Restart=always\nRestartSec=1\n\n"
                "[Install]\nWantedBy=multi-user.target\n")
        return [HostUnit("oml-pg-guard.service", unit)]


COMPONENT = Repmgr()
