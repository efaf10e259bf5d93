"""Names and identifiers from the inventory that land verbatim in paths, configs and Ansible patterns.

A host key becomes a folder name (`render` writes `<out>/<host>/...`), a file name on the controller
(`<host>.<step>.json`), a host pattern for Ansible (which expands `aio[1:2]`, splits on `,` and `:`) and
a word in haproxy.cfg, repmgr.conf, prometheus.yml, keepalived.conf and oml_manage. So only a plain name
is allowed: no pattern, path, quote, space or newline can get through. Other identifiers that are written
into configs (user names for AMI, the dialer and MinIO, the image namespace, the bucket region) get a
pattern of their own here, checked once the values are typed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from omldeploy.inventory.model import Tenant
from omldeploy.inventory.problems import Problems

#: letters, digits, `_`, `-`, `.`; first a letter or digit; at most 63 (a DNS label, a systemd-safe word)
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
HOST_NAME_ALLOWED = "letters, digits, '_', '-', '.' (starting with a letter or digit, at most 63 characters)"

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_DNS = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?\Z")
#: user names written into env files and Asterisk's manager.conf section headers
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
#: a container registry namespace (`omnileads`, `my-org/mirror`): the image is `<registry>/<repo>/omlapp`
_REPO = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*\Z")
#: an S3 region (`us-east-1`, MinIO's default, or a custom word)
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z")

PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "ami_user": (_USER, "letters, digits, '_', '.', '@', '-' (starting with a letter or digit, up to 64)"),
    "dialer_user": (_USER, "letters, digits, '_', '.', '@', '-' (starting with a letter or digit, up to 64)"),
    "s3_http_admin_user": (_USER, "letters, digits, '_', '.', '@', '-' (starting with a letter or digit, up to 64)"),
    "email_user": (_USER, "letters, digits, '_', '.', '@', '-' (starting with a letter or digit, up to 64)"),
    "omlapp_repo": (_REPO, "a registry namespace: lowercase letters, digits, '.', '_', '-' and '/' between "
                           "parts, e.g. omnileads"),
    "bucket_region": (_REGION, "letters, digits, '_', '-' (e.g. us-east-1)"),
}


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be a host key, or None when it can."""
    if HOST_NAME.match(name):
        return None
    return "is not a plain host name: Ansible would read it as a pattern (`[1:2]`, `,`, `:`) and it is " \
           "written into paths and configs"


def address_problem(text: str) -> str | None:
    """Why `text` is not an IP address or DNS name (for `ansible_host`), or None when it is one."""
    try:
        ipaddress.ip_address(text)
        return None
    except ValueError:
        pass
    if _DNS.match(text) and not text.replace(".", "").isdigit():
        return None
    return "is not an IP address or DNS name"


def identifiers(t: Tenant, p: Problems, line: Callable[[str], int | None]) -> None:
    """Identifiers with a pattern (see PATTERNS): a clear error instead of a broken config on the host."""
    for key, (pattern, allowed) in PATTERNS.items():
        value = t.settings.opt(key)
        if value is not None and not pattern.match(value):
            p.add(key, "is not a plain identifier (it is written into configs and image names)",
                  line=line(key), found=value, allowed=allowed)
