"""PostgreSQL in a container (AIO/AIT data host; both data nodes in HA, with repmgr)."""

from __future__ import annotations

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx


def listen_address(ctx: Ctx) -> str:
    """AIO keeps PostgreSQL on localhost (as the seed did); elsewhere it listens on the LAN address."""
    return "localhost" if ctx.tenant.layout.shape.value == "aio" else ctx.lan


class Postgres(Component):
    name = "postgresql"
    description = "PostgreSQL database"
    image = "postgres"
    container = "oml-postgresql-server"
    env_file = "/etc/default/postgres.env"
    roles = ("aio", "data")
    groups = ("postgres",)
    start_order = 20

    def placed(self, ctx: Ctx) -> bool:
        return ctx.facts.deploy_postgres and super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        env = [
            ("TZ", s.text("TZ")),
            ("POSTGRES_USER", s.text("postgres_user")),
            ("POSTGRES_PASSWORD", s.text("postgres_password")),
            ("POSTGRES_DB", s.text("postgres_database")),
        ]
        if s.flag("postgres_ha"):
            env += [("PGHOSTHA", "True"), ("PGHOSTRO", s.text("postgres_ro_host"))]
        if ctx.host.ha_role:
            env += [("PGHA", "True"), ("HA_ROLE", ctx.host.ha_role),
                    ("PGDATA", "/var/lib/postgresql/data/pgdata")]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        vols = [Volume("oml_postgres", "/var/lib/postgresql/data")]
        if ctx.host.ha_role:
            vols += [
                Volume("/etc/omnileads/postgresql/postgresql.conf", "/etc/postgresql/postgresql.conf", "ro"),
                Volume("/etc/omnileads/postgresql/pg_hba.conf", "/etc/postgresql/pg_hba.conf", "ro"),
                Volume("/etc/omnileads/postgresql/repmgr.conf", "/etc/repmgr.conf", "ro"),
            ]
        return vols

    def args(self, ctx: Ctx) -> list[str]:
        if ctx.host.ha_role:
            return ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
                    "-c", "hba_file=/etc/postgresql/pg_hba.conf"]
        return ["postgres", "-c", f"listen_addresses={listen_address(ctx)}"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(5432, purpose="PostgreSQL")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=listen_address(ctx), port=5432, timeout=120)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if not ctx.host.ha_role:
            return []
        peers = [h for h in ctx.tenant.hosts if "data" in h.roles]
        node_id = 1 if ctx.host.ha_role == "main" else 2
        return [
            ConfigFile("/etc/omnileads/postgresql/postgresql.conf",
                       self.template("postgresql.conf.j2", ctx), 0o644),
            ConfigFile("/etc/omnileads/postgresql/pg_hba.conf",
                       self.template("pg_hba.conf.j2", ctx, peers=peers), 0o644),
            ConfigFile("/etc/omnileads/postgresql/repmgr.conf",
                       self.template("repmgr.conf.j2", ctx, node_id=node_id), 0o644),
        ]


COMPONENT = Postgres()
