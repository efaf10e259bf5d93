"""ACME certificates (`certs: acme`): what the nginx host gets so that lego issues and renews them.

Not a component of its own (it has no long-running container): the nginx component adds these
declarations when the tenant asks for ACME, because the certificate is nginx's and nginx serves the
HTTP-01 challenges.

- `/usr/local/bin/oml_acme`: runs the lego client in a container (`goacme/lego`, catalog key `lego`)
  with the tenant's settings baked in, installs the certificate into /etc/omnileads/certs by atomic
  rename (never through a symlink a container may have planted there) and hot-reloads nginx (and
  Kamailio's TLS where it runs), without restarting either;
- issuance: a post-start hook of nginx (`oml_acme issue`), so it runs once nginx answers on port 80,
  and again after any change of the ACME settings (they are nginx files, so nginx restarts);
- renewal: `oml-acme-renew.timer` (twice a day) starts `oml-acme-renew.service`, which runs
  `oml_acme renew` (lego renews when fewer than 30 days remain; `/etc/omnileads/acme/renew.env`
  may set OML_ACME_DAYS);
- HTTP-01: a server block on port 80 (`/etc/nginx/conf.d/oml-acme.conf` in the container) that
  serves `/.well-known/acme-challenge/` from a webroot lego writes, and redirects the rest to HTTPS;
- DNS-01: lego's `exec` provider runs the operator's hook (`acme_dns_hook`), mounted read-only.

Until the first certificate is issued, nginx serves the tenant's self-signed one (render/acme.py).
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from omldeploy.components.base import ConfigFile, HostUnit, Port, Volume, _jinja
from omldeploy.inventory import acme as rules

if TYPE_CHECKING:
    from omldeploy.components.context import Ctx

SCRIPT = "/usr/local/bin/oml_acme"
DATA_DIR = "/etc/omnileads/acme"  # lego's --path: account key, certificates (0700, root only)
WEBROOT = "/var/lib/omnileads/acme-webroot"  # HTTP-01 tokens: lego writes, nginx reads
NGINX_CONF = "/etc/omnileads/nginx-acme.conf"
NGINX_CONF_IN_CONTAINER = "/etc/nginx/conf.d/oml-acme.conf"
WEBROOT_IN_CONTAINER = "/var/www/oml-acme"
SERVER_CA = f"{DATA_DIR}/server-ca.pem"
SERVICE = "oml-acme-renew.service"
TIMER = "oml-acme-renew.timer"
RENEW_DAYS = 30
# the nginx container the reload goes to, and Kamailio's (its TLS reads the same files)
NGINX_CONTAINER = "oml-nginx-server"
KAMAILIO_CONTAINER = "oml-kamailio-server"


def enabled(ctx: Ctx) -> bool:
    return rules.enabled(ctx.tenant)


def volumes(ctx: Ctx) -> list[Volume]:
    if not enabled(ctx) or ctx.tenant.settings.text("acme_challenge") != "http":
        return []
    return [Volume(NGINX_CONF, NGINX_CONF_IN_CONTAINER, "ro"), Volume(WEBROOT, WEBROOT_IN_CONTAINER, "ro")]


def ports(ctx: Ctx) -> list[Port]:
    if not enabled(ctx) or ctx.tenant.settings.text("acme_challenge") != "http":
        return []
    return [Port(80, purpose="ACME HTTP-01 challenges (redirects the rest to HTTPS)", reach="public")]


def host_directories(ctx: Ctx) -> list[tuple[str, int]]:
    return [(DATA_DIR, 0o700), (WEBROOT, 0o755)] if enabled(ctx) else []


def server_ca(ctx: Ctx) -> bytes | None:
    """The tenant's `acme_server_ca.pem`: trust for a private ACME server's HTTPS (LEGO_CA_CERTIFICATES)."""
    path = ctx.tenant.folder / rules.SERVER_CA_FILE
    return path.read_bytes() if path.is_file() else None


def data_dir(directory: str) -> str:
    """lego's folder for one ACME server: a certificate of another server (staging, an old private CA) is
    never taken for this one's, and switching servers issues anew."""
    return f"{DATA_DIR}/{hashlib.sha256(directory.encode()).hexdigest()[:12]}"


def configs(ctx: Ctx) -> list[ConfigFile]:
    """The script, the renewal service and the challenge server block. Every inventory value reaches the
    script shell-quoted, after inventory/acme.py held it to a narrow pattern."""
    if not enabled(ctx):
        return []
    env = _jinja(Path(__file__).parent / "templates")
    s = ctx.tenant.settings
    ca = server_ca(ctx)
    values = {
        "tenant": ctx.tenant.name, "image": ctx.image("lego"), "server": s.text("acme_directory"),
        "email": s.text("acme_email"), "domain": s.text("fqdn"), "challenge": s.text("acme_challenge"),
        "hook": s.opt("acme_dns_hook") or "", "server_ca": SERVER_CA if ca is not None else "",
    }
    quoted = {k: shlex.quote(v) for k, v in values.items()}
    consts = {"data": data_dir(s.text("acme_directory")), "webroot": WEBROOT, "certs": "/etc/omnileads/certs",
              "days": RENEW_DAYS, "nginx": NGINX_CONTAINER, "kamailio": KAMAILIO_CONTAINER}
    out = [
        ConfigFile(SCRIPT, env.get_template("oml_acme.sh.j2").render(q=quoted, c=consts, v=values), 0o755),
        ConfigFile(f"/etc/systemd/system/{SERVICE}", env.get_template("oml-acme-renew.service.j2").render(
            script=SCRIPT, data=DATA_DIR, tenant=ctx.tenant.name), 0o644),
    ]
    if s.text("acme_challenge") == "http":
        out.append(ConfigFile(NGINX_CONF, env.get_template("nginx-acme.conf.j2").render(
            webroot=WEBROOT_IN_CONTAINER), 0o644))
    if ca is not None:
        out.append(ConfigFile(SERVER_CA, ca.decode("ascii", "replace"), 0o644))
    return out


def host_units(ctx: Ctx) -> list[HostUnit]:
    if not enabled(ctx):
        return []
    timer = (f"# certs: acme renewal of tenant {ctx.tenant.name}, rendered by omldeploy\n"
             "[Unit]\n"
             f"Description=Renew the ACME certificate of tenant {ctx.tenant.name} when due\n\n"
             "[Timer]\nOnCalendar=*-*-* 00,12:00:00\nRandomizedDelaySec=1h\nPersistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return [HostUnit(TIMER, timer)]


def post_start(ctx: Ctx) -> list[str]:
    return [f"{SCRIPT} issue"] if enabled(ctx) else []


def hook_images(ctx: Ctx) -> list[str]:
    return [ctx.image("lego")] if enabled(ctx) else []
