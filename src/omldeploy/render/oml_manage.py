"""The `oml_manage` helper installed on every host, limited to what runs there.

Seed commands, minus its bugs: `--clean_redis` stops the real unit, `--redis_cli` leaves no
container behind, `--show_bucket` reads the bucket settings from the container that has them, and
`--help` exits 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2

MANAGE = "python3 /opt/omnileads/ominicontacto/manage.py"


@dataclass(frozen=True)
class Command:
    flag: str
    help: str
    needs: str  # component that must run on this host
    run: tuple[str, ...]


def _exec(container: str, cmd: str, tty: bool = False) -> tuple[str, ...]:
    flags = "-it " if tty else "-i "
    return (f"need {container}", f"exec podman exec {flags}{container} {cmd}")


COMMANDS = (
    Command("--reset_pass", "reset the web admin password to admin/admin", "omnileads",
            _exec("oml-django-server", f"{MANAGE} cambiar_admin_password")),
    Command("--init_env", "create demo users, routes, trunks, forms, pauses", "omnileads",
            _exec("oml-django-server", f"{MANAGE} inicializar_entorno")),
    Command("--init_env_devops", "same as --init_env for QA", "omnileads",
            _exec("oml-django-server", f"{MANAGE} inicializar_entorno --qa-devops")),
    Command("--regenerar_asterisk", "rebuild Asterisk/Redis config from the database", "omnileads",
            _exec("oml-django-server", f"{MANAGE} regenerar_asterisk")),
    Command("--clean_redis", "wipe Redis data and regenerate it from the database", "redis", (
        "systemctl stop redis.service",
        "podman volume rm -f oml_redis >/dev/null",
        "systemctl start redis.service",
        "if podman container exists oml-django-server; then "
        f"podman exec -i oml-django-server {MANAGE} regenerar_asterisk; "
        "else echo 'run oml_manage --regenerar_asterisk on the app host'; fi",
    )),
    Command("--show_bucket", "list the objects in the tenant bucket", "omnileads",
            _exec("oml-django-server", "sh -c 'aws --endpoint-url \"${S3_ENDPOINT_MINIO:-$S3_ENDPOINT}\" "
                  "s3 ls --recursive \"s3://$S3_BUCKET_NAME\"'")),
    Command("--asterisk_cli", "Asterisk console", "asterisk",
            _exec("oml-asterisk-server", "asterisk -rvvvv", tty=True)),
    Command("--asterisk_terminal", "shell in the Asterisk container", "asterisk",
            _exec("oml-asterisk-server", "bash", tty=True)),
    Command("--psql", "psql on the tenant database", "omnileads",
            _exec("oml-django-server", "psql", tty=True)),
    Command("--redis_cli", "redis-cli on the tenant Redis", "redis",
            # on the address Redis binds (BIND_IP, the container's env); in the seed's HA with the password
            # of the included auth.conf, through the environment (components/redis_auth.py)
            _exec("oml-redis-server", "sh -c '[ -r /data/auth.conf ] && export REDISCLI_AUTH=\"$(sed -n "
                  "\"s/^requirepass //p\" /data/auth.conf)\"; exec redis-cli -h \"${BIND_IP:-localhost}\"'",
                  tty=True)),
    Command("--rtpengine_conf", "show the RTPengine configuration", "rtpengine",
            _exec("oml-rtpengine-server", "cat /etc/rtpengine.conf")),
    Command("--nginx_t", "show the nginx configuration", "nginx",
            _exec("oml-nginx-server", "nginx -T")),
    *[Command(f"--{flag}_logs", f"follow the {comp} logs", comp, (f"exec journalctl -u {comp}.service -f",))
      for flag, comp in (("asterisk", "asterisk"), ("kamailio", "kamailio"), ("django", "omnileads"),
                         ("rtpengine", "rtpengine"), ("ws", "websockets"), ("redis", "redis"),
                         ("sentinel", "sentinel"), ("haproxy", "haproxy"), ("nginx", "nginx"))],
)


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    text = resources.files("omldeploy.render").joinpath("templates", "oml_manage.sh.j2").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.from_string(text)


def render(tenant: str, host: str, components: list[str]) -> str:
    commands = [c for c in COMMANDS if c.needs in components]
    return _template().render(tenant=tenant, host=host, commands=commands)
