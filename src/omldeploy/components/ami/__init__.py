"""astami (`ami.service`): keeps an Asterisk Manager (AMI) session and publishes call events to Redis.

Optional like fastagi: it runs only when the release or the inventory names `astami_version` (upstream
added it in 1.31.0). In HA one AMI client per tenant is enough and two would publish every event twice,
so it is placed on the main app node only; it reaches Asterisk through the voice VIP.
"""

from __future__ import annotations

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, Health
from omldeploy.components.context import Ctx

TAG_KEY = "astami_version"


class Ami(Component):
    name = "ami"
    description = "OMniLeads AMI client (astami)"
    image = "astami"
    container = "oml-ami-server"
    env_file = "/etc/default/ami.env"
    roles = ("aio", "app")
    # upstream: After=daphne+omnileads; asterisk and redis too where they share the host, so a
    # restart of Asterisk (which drops the AMI session) restarts this client with it
    depends_on = ("asterisk", "redis", "daphne", "omnileads")
    groups = ("app", "ami", "restart", "restart_core", "restart_asterisk")
    start_order = 87

    def placed(self, ctx: Ctx) -> bool:
        return (TAG_KEY in ctx.tenant.versions and ctx.host.ha_role in (None, "main")
                and super().placed(ctx))

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        f = ctx.facts
        return [
            ("TZ", s.text("TZ")),
            ("AMI_USER", s.text("ami_user")),
            ("AMI_PASSWORD", s.text("ami_password")),
            ("ASTERISK_HOSTNAME", f.asterisk_host),  # the voice VIP in HA
            ("REDIS_HOSTNAME", f.redis_host),
            *redis_auth.client_env(ctx),
        ]

    def health(self, ctx: Ctx) -> Health:
        return Health("active")  # no listening port: an AMI client


COMPONENT = Ami()
