"""MinIO object storage on the data/AIO host when no external `bucket_url` is given."""

from __future__ import annotations

from omldeploy.components.base import Component, Health, Port, Volume
from omldeploy.placement import Ctx


class Minio(Component):
    name = "minio"
    description = "MinIO object storage"
    image = "minio"
    container = "oml-minio-server"
    env_file = "/etc/default/minio.env"
    roles = ("aio", "data")
    groups = ("minio",)
    start_order = 10

    def placed(self, ctx: Ctx) -> bool:
        return ctx.facts.deploy_minio and super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        return [
            ("MINIO_ROOT_USER", s.text("s3_http_admin_user")),
            ("MINIO_ROOT_PASSWORD", s.text("s3_http_admin_pass")),
        ]

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("oml_minio", "/data")]

    def args(self, ctx: Ctx) -> list[str]:
        return ["server", "/data", "--address", f"{ctx.lan}:9000", "--console-address", f"{ctx.lan}:9090"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9000, purpose="S3 API"), Port(9090, purpose="console")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9000, path="/minio/health/live")


COMPONENT = Minio()
