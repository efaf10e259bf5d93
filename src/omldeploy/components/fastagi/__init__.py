"""FastAGI server (omnileads/fastagi): Asterisk's dialplan hands calls to it on port 4573.

Upstream added it in July 2023 (release 1.29.0-230705.01), so it is optional here: it runs only when
the release or the inventory names `fastagi_version`, and goes away again when a later inventory no
longer does (the apply engine removes units a host no longer has). The web app learns where it is
through `FASTAGI` (components/common.py).
"""

from __future__ import annotations

from omldeploy.components import common, redis_auth
from omldeploy.components.base import Component, Health, Port
from omldeploy.components.context import Ctx

PORT = 4573
TAG_KEY = "fastagi_version"


def deployed(ctx: Ctx) -> bool:
    """Whether the tenant asks for FastAGI (its tag comes from the release or the inventory)."""
    return TAG_KEY in ctx.tenant.versions


class FastAgi(Component):
    name = "fastagi"
    description = "OMniLeads FastAGI server"
    image = "fastagi"
    container = "oml-fastagi-server"
    env_file = "/etc/default/fastagi.env"
    roles = ("aio", "app")
    depends_on = ("daphne", "omnileads")  # upstream: After= both; it reads the schema they migrate
    groups = ("app", "fastagi", "restart")
    start_order = 87

    def placed(self, ctx: Ctx) -> bool:
        return deployed(ctx) and super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        f = ctx.facts
        return [
            ("TZ", s.text("TZ")),
            ("FASTAGI_HOSTNAME", ctx.lan),
            ("AMI_USER", s.text("ami_user")),
            ("AMI_PASSWORD", s.text("ami_password")),
            ("ASTERISK_HOSTNAME", f.asterisk_host),
            ("OMNILEADS_HOSTNAME", f.nginx_host),
            *common.pg_client(ctx),
            ("REDIS_HOSTNAME", f.redis_host),
            ("REDIS_PORT", "6379"),
            *redis_auth.client_env(ctx),
            *common.s3(ctx, browser=False),
        ]

    def args(self, ctx: Ctx) -> list[str]:
        return ["python", "/app/fastagi.py"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(PORT, purpose="FastAGI (from Asterisk)")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan, port=PORT, timeout=120)


COMPONENT = FastAgi()
