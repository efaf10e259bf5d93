"""Rules of `certs: acme`: certificates from an ACME server (Let's Encrypt by default), issued and
renewed on the nginx host by the lego client (components/acme).

Every value here lands in a shell script and on a container's command line on the host, so each one
is held to a narrow pattern instead of being quoted and hoped for: the directory is an https URL of
plain characters, the e-mail a plain address, the DNS hook an absolute path of plain characters.
What the tool cannot run is refused here (exit 2) rather than failing later on a host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from omldeploy.inventory.model import Shape, Tenant
from omldeploy.inventory.problems import Problems

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
KEYS = ("acme_email", "acme_directory", "acme_challenge", "acme_dns_hook")
#: an https URL with no credentials, query or shell/nginx metacharacters
DIRECTORY = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?\Z")
#: an absolute path of plain characters, no `..` component (checked apart)
HOOK_PATH = re.compile(r"/[A-Za-z0-9._/-]{1,254}\Z")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+\Z")
#: the file a tenant may add to trust a private ACME server's HTTPS certificate (e.g. step-ca, pebble)
SERVER_CA_FILE = "acme_server_ca.pem"

Lines = Callable[[str], "int | None"]


def enabled(t: Tenant) -> bool:
    return t.settings.opt("certs") == "acme"


def check(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    if not enabled(t):
        for key in KEYS:
            if s.has(key):
                p.warn(key, "is ignored unless certs is acme", line=line(key))
        return
    if t.layout.shape is Shape.HA:
        p.add("certs", "acme is not supported in high-availability layouts yet (the certificate would have to "
              "be shared by both nodes and HAProxy)", line=line("certs"),
              allowed="certs: selfsigned or custom (put the ACME certificate in cert.pem/key.pem)")
    fqdn = s.opt("fqdn")
    if fqdn is None:
        p.add("fqdn", "missing: certs is acme, and an ACME server certifies a DNS name",
              allowed="the public DNS name of the web host, e.g. contact.example.com")
    else:
        try:
            ipaddress.ip_address(fqdn)
            p.add("fqdn", "is an IP address, but certs: acme needs a DNS name", line=line("fqdn"), found=fqdn,
                  allowed="a DNS name that resolves to the web host")
        except ValueError:
            pass
    email = s.opt("acme_email")
    if email is None:
        p.add("acme_email", "missing: certs is acme, and the ACME account needs a contact address",
              allowed="name@domain (expiry notices go there)")
    elif not EMAIL.match(email):
        p.add("acme_email", "is not a plain e-mail address", line=line("acme_email"), found=email,
              allowed="name@domain with letters, digits and . _ % + -")
    directory = s.text("acme_directory")
    if not DIRECTORY.match(directory):
        p.add("acme_directory", "is not an https URL of an ACME directory", line=line("acme_directory"),
              found=directory, allowed=f"https://host[:port]/path (no user:password@, query or quotes), e.g. "
              f"{LETS_ENCRYPT}")
    hook = s.opt("acme_dns_hook")
    if s.text("acme_challenge") == "dns":
        if hook is None:
            p.add("acme_dns_hook", "missing: acme_challenge is dns, and the TXT records are published by a hook",
                  allowed="the absolute path of an executable on the web host (docs/certificates.md)")
    elif hook is not None:
        p.warn("acme_dns_hook", "is ignored unless acme_challenge is dns", line=line("acme_dns_hook"))
    if hook is not None and (not HOOK_PATH.match(hook) or ".." in hook.split("/")):
        p.add("acme_dns_hook", "is not an absolute path of plain characters", line=line("acme_dns_hook"),
              found=hook, allowed="/path/to/executable (letters, digits, . _ - /; no ..)")
    server_ca = t.folder / SERVER_CA_FILE
    if server_ca.exists() and b"BEGIN CERTIFICATE-----" not in server_ca.read_bytes()[:65536]:
        p.add("certs", f"{server_ca} is not a PEM certificate", line=line("certs"),
              allowed="the CA certificate(s) of a private ACME server, in PEM")
