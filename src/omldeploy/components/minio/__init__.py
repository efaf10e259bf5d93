"""MinIO object storage on the data/AIO host when no external `bucket_url` is given."""

from __future__ import annotations

import shlex
from urllib.parse import quote

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume, envfile
from omldeploy.components.context import Ctx

MC_ENV = "/etc/omnileads/minio-mc.env"


class Minio(Component):
    name = "minio"
    description = "MinIO object storage"
    image = "minio"
    container = "oml-minio-server"
    env_file = "/etc/default/minio.env"
    roles = ("aio", "data")
    groups = ("minio", "restart")
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
        # console on 9001 (as upstream's later releases): the seed's 9090 collides with Prometheus on AIO
        return ["server", "/data", "--address", f"{ctx.lan}:9000", "--console-address", f"{ctx.lan}:9001"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(9000, purpose="S3 API"), Port(9001, purpose="console", reach="admin")]

    def health(self, ctx: Ctx) -> Health:
        return Health("http", host=ctx.lan, port=9000, path="/minio/health/live")

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        """Credentials for the `mc` client that creates the bucket and the app's user.
        `MC_HOST_<alias>` carries the admin URL, so no password appears on a command line."""
        s = ctx.tenant.settings
        admin = f"{quote(s.text('s3_http_admin_user'), safe='')}:{quote(s.text('s3_http_admin_pass'), safe='')}"
        env = [
            ("MC_HOST_oml", f"http://{admin}@{ctx.lan}:9000"),
            ("BUCKET", s.text("bucket_name")),
            ("BUCKET_ACCESS_KEY", s.text("bucket_access_key")),
            ("BUCKET_SECRET_KEY", s.text("bucket_secret_key")),
        ]
        return [ConfigFile(MC_ENV, envfile(env), 0o600, secret=True)]

    def post_start(self, ctx: Ctx) -> list[str]:
        """Create the bucket and the app's user with the `mc` client shipped in the MinIO image
        (no binary downloaded at run time, unlike the seed's `minio_cmd`), run with `podman exec`.
        The bucket secret goes to `mc admin user add` on its stdin (which mc reads when the secret key
        argument is left out), through the shell's printf builtin: an argument of mc would be visible in
        /proc/<pid>/cmdline, and `ps`, to every user of the host."""
        script = ('mc mb --ignore-existing "oml/$BUCKET" && '
                  'printf \'%s\\n\' "$BUCKET_SECRET_KEY" | mc admin user add oml "$BUCKET_ACCESS_KEY" && '
                  # attaching twice is refused as "already in effect": that is success for a re-run
                  'out=$(mc admin policy attach oml readwrite --user "$BUCKET_ACCESS_KEY" 2>&1) || '
                  '{ echo "$out" | grep -q "already in effect" || { echo "$out" >&2; exit 1; }; }')
        return [f"podman exec --env-file={MC_ENV} {self.container} sh -c {shlex.quote(script)}"]


COMPONENT = Minio()
