"""The app's periodic jobs (omlapp image). In HA it runs on one app node at a time: enabled on the
main node, and moved by keepalived's cron instance (see components/keepalived)."""

from __future__ import annotations

from omldeploy.components import common
from omldeploy.components.base import Component, Health
from omldeploy.components.context import Ctx


class Cron(Component):
    name = "omlcron"
    description = "OMniLeads periodic jobs (cron)"
    image = "omlcron"  # the omlapp image; omlcron_version may pin another tag (release 1.32.1)
    container = "oml-cron-server"
    env_file = "/etc/default/omlcron.env"
    roles = ("aio", "app")
    depends_on = ("daphne", "omnileads")
    groups = ("app", "cron", "restart")
    start_order = 88

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return common.omlapp(ctx, "cron")

    def enabled(self, ctx: Ctx) -> bool:
        return ctx.host.ha_role in (None, "main")

    def health(self, ctx: Ctx) -> Health:
        return Health("active")


COMPONENT = Cron()
