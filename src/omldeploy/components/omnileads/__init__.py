"""The Django web app under uwsgi (`omnileads.service`, container `oml-django-server`)."""

from __future__ import annotations

import shlex

from omldeploy.components import common
from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.placement import Ctx

GEXEC = "\\gexec"  # psql: run each result row as a statement (CREATE DATABASE cannot run in a DO block)


class Django(Component):
    name = "omnileads"
    description = "OMniLeads web app (Django/uwsgi)"
    image = "omlapp"
    container = "oml-django-server"
    env_file = "/etc/default/django.env"
    roles = ("aio", "app")
    depends_on = ("postgresql", "redis", "minio")
    groups = ("app", "django")
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
        """Create the tenant database if missing (locally or on the managed server), using a one-shot
        PostgreSQL client container with the app's own env file (no credentials on a command line)."""
        s = ctx.tenant.settings
        db = s.text("postgres_database")
        image = ctx.image("postgres")
        create = (f"SELECT 'CREATE DATABASE \"{db}\"' WHERE NOT EXISTS "
                  f"(SELECT FROM pg_database WHERE datname = '{db}')")
        script = "printf '%s\\n' " + shlex.quote(create + " " + GEXEC) + " | psql -v ON_ERROR_STOP=1 -q"
        client = "podman run --rm --network=host --env-file=/etc/default/django.env"
        maint = s.text("postgres_maintenance_db")
        hooks = [f"{client} -e PGDATABASE={shlex.quote(maint)} {image} sh -c {shlex.quote(script)}"]
        if not s.has("restore_file_timestamp") and not s.has("upgrade_from_oml_1"):
            ext = "psql -q -c 'CREATE EXTENSION IF NOT EXISTS plperl' || echo 'plperl is not available' >&2"
            hooks.append(f"{client} {image} sh -c {shlex.quote(ext)}")
        return hooks

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
