"""The app's periodic jobs (omlapp image). In HA it runs on one app node at a time, and keepalived's
CRON instance alone decides which: its transition script starts omlcron on the node that becomes
MASTER and stops it elsewhere (see components/keepalived), on install as after a failure."""

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
        """Started at boot only outside HA. An HA node that boots must not run a second cron while
        the other node leads (after a failover, the main is the follower): it waits for its CRON
        state, which keepalived writes within seconds of starting."""
        return ctx.host.ha_role is None

    def health(self, ctx: Ctx) -> Health:
        return Health("active")


COMPONENT = Cron()
