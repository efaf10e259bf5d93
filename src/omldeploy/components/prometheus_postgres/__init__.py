"""PostgreSQL exporter, next to the PostgreSQL it watches (targets the address PostgreSQL listens on).

With a managed PostgreSQL (cloud, `postgres_out`), `postgres_monitoring: true` runs it beside the
tenant's Prometheus instead, against `postgres_host:postgres_port` (TLS required with `postgres_ssl`).
"""

from __future__ import annotations

from urllib.parse import quote

from omldeploy.components.base import Component, Health, Port
from omldeploy.components.common import host_port
from omldeploy.components.context import Ctx
from omldeploy.components.postgresql import listen_address
from omldeploy.components.prometheus import COMPONENT as PROMETHEUS


class PostgresExporter(Component):
    name = "prometheus_postgres"
    description = "Prometheus exporter for PostgreSQL"
    image = "postgres_exporter"
    container = "oml-prometheus-postgres"
    env_file = "/etc/default/prometheus_postgres.env"
    roles = ("aio", "data")
    depends_on = ("postgresql",)
    groups = ("postgres", "observability")
    start_order = 21

    def placed(self, ctx: Ctx) -> bool:
        if ctx.facts.deploy_postgres:
            return super().placed(ctx)
        if ctx.tenant.settings.flag("postgres_monitoring"):
            return PROMETHEUS.placed(ctx)
        return False

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        user = quote(s.text("postgres_user"), safe="")
        password = quote(s.text("postgres_password"), safe="")
        db = quote(s.text("postgres_database"), safe="")
        if ctx.facts.deploy_postgres:
            where, ssl = f"{listen_address(ctx)}:5432", "disable"
        else:
            where = host_port(ctx.facts.postgres_host, ctx.facts.postgres_port)
            ssl = "require" if s.flag("postgres_ssl") else "prefer"
        dsn = f"postgresql://{user}:{password}@{where}/{db}?sslmode={ssl}"
        return [("DATA_SOURCE_NAME", dsn)]

    def args(self, ctx: Ctx) -> list[str]:
        return [f"--web.listen-address={ctx.lan}:9187"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9187, purpose="metrics", reach="monitoring")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9187, path="/metrics")


COMPONENT = PostgresExporter()
