"""Env blocks several components share (PostgreSQL client, object storage, the omlapp family).

Names and meanings follow the seed's env files (components.md); the values come from computed facts,
so every component of a tenant agrees on where PostgreSQL, Redis and the bucket are.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from omldeploy import __version__
from omldeploy.catalog.releases import find_release
from omldeploy.components import redis_auth

if TYPE_CHECKING:
    from omldeploy.components.context import Ctx

Env = list[tuple[str, str]]


def host_port(host: str, port: int) -> str:
    """`host:port` for a URL or DSN; an IPv6 address goes in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def pg_client(ctx: Ctx) -> Env:
    s = ctx.tenant.settings
    env: Env = [
        ("PGHOST", ctx.facts.postgres_host),
        ("PGPORT", str(ctx.facts.postgres_port)),
        ("PGUSER", s.text("postgres_user")),
        ("PGPASSWORD", s.text("postgres_password")),
        ("PGDATABASE", s.text("postgres_database")),
    ]
    if s.flag("postgres_ha") or ctx.tenant.layout.shape.value == "ha":
        env += [("PGHOSTHA", "True"), ("PGHOSTRO", s.text("postgres_ro_host"))]
    if s.flag("postgres_ssl"):
        env.append(("PGSSLMODE", "require"))
    return env


def s3(ctx: Ctx, *, browser: bool) -> Env:
    """Bucket settings. `browser` selects the endpoint handed to web clients (nginx proxies MinIO)."""
    s = ctx.tenant.settings
    f = ctx.facts
    env: Env = [
        ("CALLREC_DEVICE", s.text("callrec_device")),
        ("S3_BUCKET_NAME", s.text("bucket_name")),
        ("AWS_ACCESS_KEY_ID", s.text("bucket_access_key")),
        ("AWS_SECRET_ACCESS_KEY", s.text("bucket_secret_key")),
    ]
    if f.bucket_aws:
        env += [
            ("S3_ENDPOINT_AWS", ""),
            ("S3_REGION_NAME", s.text("bucket_region")),
            ("AWS_DEFAULT_REGION", s.text("bucket_region")),
        ]
        return env
    env.append(("AWS_DEFAULT_REGION", s.text("bucket_region")))
    env.append(("S3_ENDPOINT", f.s3_browser_endpoint if browser else f.s3_endpoint))
    if browser and f.deploy_minio:
        env.append(("S3_ENDPOINT_MINIO", f.s3_endpoint))
    return env


def release_info(ctx: Ctx) -> Env:
    """What the app shows in "About": stable per version, so re-runs render identical files
    (the seed embedded the deploy date, so every run changed three env files)."""
    s = ctx.tenant.settings
    version = ctx.tenant.versions["omnileads_version"]
    rel = find_release(s.text("omnileads_release")) if s.has("omnileads_release") else None
    return [
        ("OML_BRANCH", rel.name if rel else version),
        ("OML_COMMIT", f"omldeploy-{__version__}"),
        ("OML_BUILD_DATE", rel.date if rel else ""),
    ]


def email(ctx: Ctx) -> Env:
    s = ctx.tenant.settings
    backend = s.text("email_backend")
    env: Env = [("EMAIL_BACKEND", backend)]
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        env += [
            ("DEFAULT_FROM_EMAIL", s.text("email_default_from")),
            ("EMAIL_HOST", s.text("email_host")),
            ("EMAIL_HOST_PASSWORD", s.text("email_password")),
            ("EMAIL_HOST_USER", s.text("email_user")),
            ("EMAIL_PORT", s.text("email_port")),
        ]
    for key, name in (("email_ssl_certfile", "EMAIL_SSL_CERTFILE"), ("email_ssl_keyfile", "EMAIL_SSL_KEYFILE"),
                      ("email_use_ssl", "EMAIL_USE_SSL"), ("email_use_tls", "EMAIL_USE_TLS")):
        if s.has(key):
            value = s[key]
            env.append((name, ("True" if value else "False") if isinstance(value, bool) else str(value)))
    return env


def omlapp(ctx: Ctx, role: str) -> Env:
    """Env of the omlapp image in one of its three roles: uwsgi (django), daphne, cron."""
    s = ctx.tenant.settings
    f = ctx.facts
    ha = ctx.tenant.layout.shape.value == "ha"
    env: Env = [
        ("CRON_ENABLE", "true" if role == "cron" else "false"),
        ("TZ", s.text("TZ")),
        ("AMI_USER", s.text("ami_user")),
        ("AMI_PASSWORD", s.text("ami_password")),
        ("DJANGO_HOSTNAME", "localhost"),
    ]
    if role == "uwsgi":
        env += [("LOGS_FILE", "true"), ("UWSGI_PORT", "8099")]
    elif role == "daphne":
        env += [("DAPHNE_ENABLE", "True"), ("DAPHNE_PORT", "8098")]
    else:
        env += [("UWSGI_PORT", "8097")]
    env += [
        ("ASTERISK_LOCATION", "/opt/omnileads/asterisk"),
        ("ASTERISK_HOSTNAME", f.asterisk_host),
        ("KAMAILIO_HOSTNAME", ctx.kamailio_host),
        ("PYTHONPATH", "/opt/omnileads/ominicontacto"),
        ("INSTALL_PREFIX", "/opt/omnileads/"),
        ("CALIFICACION_REAGENDA", "Agenda"),
        ("DJANGO_SETTINGS_MODULE", "ominicontacto.settings.production"),
        ("EPHEMERAL_USER_TTL", str(s.num("ECCTL"))),
        ("LOGIN_FAILURE_LIMIT", str(s.num("LOGIN_FAILURE_LIMIT"))),
        ("OMNILEADS_HOSTNAME", f.application_host if ha else ctx.lan),
        *pg_client(ctx),
        ("REDIS_HOSTNAME", f.redis_host),
        *redis_auth.client_env(ctx),
        ("SESSION_COOKIE_AGE", str(s.num("SCA"))),
        ("WEBSOCKET_HOST", ctx.lan),
        ("WEBSOCKET_PORT", "8000"),
        ("WOMBAT_HOSTNAME", f.dialer_host),
        ("WOMBAT_USER", s.text("dialer_user")),
        ("WOMBAT_PASSWORD", s.text("dialer_password")),
        *fastagi(ctx),
        ("MONITORFORMAT", "mp3"),
        ("S3_STORAGE_ENABLED", "true"),
        *s3(ctx, browser=role != "cron"),
        ("GOOGLE_MAPS_API_KEY", s.text("google_maps_api_key")),
        ("GOOGLE_MAPS_CENTER", s.text("google_maps_center")),
        *release_info(ctx),
        *email(ctx),
    ]
    if role == "uwsgi":
        env += [
            ("OML_LOGGING_SLOWSQL_ENABLED", ""),
            ("OML_LOGGING_SLOWSQL_OUTPUT", "-"),
            ("OML_LOGGING_SLOWSQL_DURATION", "1"),
        ]
    if s.flag("enterprise_edition"):
        env += [("SURVEY_VERSION", "develop"), ("WALLBOARD_VERSION", "develop"),
                ("PREMIUM_REPORTS_VERSION", "develop")]
    return env


def fastagi(ctx: Ctx) -> Env:
    """`FASTAGI`: where the FastAGI server is, when the tenant deploys one (this host's own when it runs
    one there, as every app host does)."""
    hosts = ctx.hosts_running("fastagi")
    if not hosts:
        return []
    return [("FASTAGI", ctx.lan if ctx.host in hosts else hosts[0].lan_ip)]


GEXEC = "\\gexec"  # psql: run each result row as a statement (CREATE DATABASE cannot run in a DO block)


def database_hooks(ctx: Ctx, env_file: str) -> list[str]:
    """Create the tenant database (and plperl) if missing — locally or on the managed server — before
    the first component that uses it starts. A one-shot PostgreSQL client container reads the
    component's own env file, so no credential is on a command line. Idempotent."""
    s = ctx.tenant.settings
    db = s.text("postgres_database")
    image = ctx.image("postgres")
    create = (f"SELECT 'CREATE DATABASE \"{db}\"' WHERE NOT EXISTS "
              f"(SELECT FROM pg_database WHERE datname = '{db}')")
    script = "printf '%s\\n' " + shlex.quote(create + " " + GEXEC) + " | psql -v ON_ERROR_STOP=1 -q"
    client = f"podman run --rm --network=host --env-file={env_file}"
    maint = s.text("postgres_maintenance_db")
    hooks = [f"{client} -e PGDATABASE={shlex.quote(maint)} {image} sh -c {shlex.quote(script)}"]
    if not s.has("restore_file_timestamp") and not s.has("upgrade_from_oml_1"):
        ext = "psql -q -c 'CREATE EXTENSION IF NOT EXISTS plperl' || echo 'plperl is not available' >&2"
        hooks.append(f"{client} {image} sh -c {shlex.quote(ext)}")
    return hooks
