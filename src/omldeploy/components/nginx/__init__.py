"""nginx: the HTTPS/WSS entry point on the app/AIO host (its routing is defined in the image)."""

from __future__ import annotations

from omldeploy.components import common
from omldeploy.components.base import Component, Health, Port, Volume
from omldeploy.components.context import Ctx


class Nginx(Component):
    name = "nginx"
    description = "nginx (HTTPS entry point)"
    image = "nginx"
    container = "oml-nginx-server"
    env_file = "/etc/default/nginx.env"
    roles = ("aio", "app")
    depends_on = ("omnileads", "daphne", "websockets", "kamailio")
    groups = ("app", "nginx", "restart", "restart_core", "restart_django")
    start_order = 90

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s3 = dict(common.s3(ctx, browser=False))
        env = [
            ("DJANGO_HOSTNAME", "localhost"),
            ("DAPHNE_HOSTNAME", "localhost"),
            ("KAMAILIO_HOSTNAME", ctx.kamailio_host),
            ("WEBSOCKETS_HOSTNAME", ctx.websockets_host),
            ("ENV", "prodenv"),
            ("S3_ENDPOINT", s3.get("S3_ENDPOINT", "")),
            ("CALLREC_DEVICE", s3["CALLREC_DEVICE"]),
        ]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [
            Volume("/etc/omnileads/certs", "/etc/omnileads/certs"),
            Volume("django_static", "/opt/omnileads/static"),
            Volume("django_callrec_zip", "/opt/omnileads/asterisk/var/spool/asterisk/monitor"),
            Volume("nginx_logs", "/var/log/nginx/"),
        ]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(443, purpose="HTTPS / WSS")]

    def health(self, ctx: Ctx) -> Health:
        return Health("https", host=ctx.lan, port=443, path="/")


COMPONENT = Nginx()
