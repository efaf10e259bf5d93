"""The Django web app under uwsgi (`omnileads.service`, container `oml-django-server`)."""

from __future__ import annotations

from omldeploy.components import common
from omldeploy.components.base import CallCounter, Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx


class Django(Component):
    name = "omnileads"
    description = "OMniLeads web app (Django/uwsgi)"
    image = "omlapp"
    container = "oml-django-server"
    env_file = "/etc/default/django.env"
    roles = ("aio", "app")
    depends_on = ("postgresql", "redis", "minio")
    groups = ("app", "django", "restart", "restart_core", "restart_django")
    start_order = 85

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return common.omlapp(ctx, "uwsgi")

    def volumes(self, ctx: Ctx) -> list[Volume]:
        vols = [
            Volume("django_static", "/opt/omnileads/static"),
            Volume("django_callrec_zip", "/opt/omnileads/asterisk/var/spool/asterisk/monitor"),
            Volume("django_logs", "/opt/omnileads/log", "rw"),
        ]
        if ctx.tenant.settings.has("scalable_tunings"):
            vols.append(Volume("/etc/omnileads/uwsgi.ini", "/opt/omnileads/run/oml_uwsgi.ini", "ro"))
        return vols

    def pre_start(self, ctx: Ctx) -> list[str]:
        return common.database_hooks(ctx, self.env_file or "")

    def call_counter(self, ctx: Ctx) -> CallCounter | None:
        """Beside Kamailio on an app host: the tenant's Asterisk, with the AMI account Django uses."""
        return CallCounter(self.env_file or "", ctx.facts.asterisk_host, 5038)

    def hook_images(self, ctx: Ctx) -> list[str]:
        return [ctx.image("postgres")]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(8099, purpose="uwsgi (via nginx)")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host="localhost", port=8099, timeout=180)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if not ctx.tenant.settings.has("scalable_tunings"):
            return []
        return [ConfigFile("/etc/omnileads/uwsgi.ini", self.template("uwsgi.ini.j2", ctx), 0o644)]


COMPONENT = Django()
