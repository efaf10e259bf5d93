"""`omldeploy certs status|renew`: what each TLS certificate of a tenant is, when it expires, and the
re-issue of the selfsigned server certificate (issue 12 M4).

The certificates are read from the tenant folder (the tenant CA and server certificate under
`.omldeploy/pki/`, or the operator's `cert.pem`): that is exactly what `install` pushes to every host
that serves TLS (nginx, Kamailio, HAProxy). `renew` re-issues the server certificate from the tenant CA
with the same names, then converges only the units that use the certificates, so nothing else restarts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omldeploy.inventory.model import Tenant
from omldeploy.ops.converge import CERTS_ACTION, Reporter, converge
from omldeploy.render import material

WARN_DAYS = material.RENEW_WITHIN_DAYS


@dataclass(frozen=True)
class CertInfo:
    role: str  # "tenant CA", "server", "custom"
    path: Path
    issuer: str  # "self (root)", "tenant CA", or the issuer's common name
    subject: str
    names: tuple[str, ...]
    not_after: dt.datetime
    days_left: int

    @property
    def due(self) -> bool:
        return self.days_left < WARN_DAYS

    def as_dict(self) -> dict[str, Any]:
        return {"certificate": self.role, "file": str(self.path), "issuer": self.issuer, "subject": self.subject,
                "names": list(self.names), "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "days_left": self.days_left, "expires_soon": self.due, "expired": self.days_left < 0}


def describe(tenant: Tenant, now: dt.datetime | None = None) -> list[CertInfo]:
    """The tenant's certificates as kept in its folder (none yet before the first render)."""
    now = now or dt.datetime.now(dt.UTC)
    mode = tenant.settings.opt("certs")
    pki = tenant.folder / material.MATERIAL_DIR / "pki"
    wanted = [("tenant CA", pki / "ca.pem"), ("server", pki / "server.pem")] if mode == "selfsigned" else \
        [("custom", tenant.folder / "cert.pem")] if mode == "custom" else []
    out = []
    for role, path in wanted:
        info = _read(role, path, now)
        if info is not None:
            out.append(info)
    return out


def _read(role: str, path: Path, now: dt.datetime) -> CertInfo | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None

    def cn(name: x509.Name) -> str:
        found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(found[0].value) if found else name.rfc4514_string()

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = (*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress)))
    except x509.ExtensionNotFound:
        names = ()
    if cert.issuer == cert.subject:
        issuer = "self (root)"
    elif role == "server":
        issuer = "tenant CA"
    else:
        issuer = cn(cert.issuer)
    after = material.not_after(cert)
    return CertInfo(role, path, issuer, cn(cert.subject), tuple(names), after, (after - now).days)


def renew(tenant: Tenant, reporter: Reporter) -> int:
    """Re-issue the selfsigned server certificate now (custom: push the operator's current files), then
    converge only the units that use the certificates."""
    mode = tenant.settings.opt("certs")
    if mode == "selfsigned":
        renewed = material.renew_server(tenant.folder, None)
        if renewed is None:
            reporter.line("no valid server certificate yet: this run issues one from the tenant CA")
        else:
            old, new = renewed
            reporter.line(f"server certificate re-issued from the tenant CA: valid until {new:%Y-%m-%d} "
                          f"(was {old:%Y-%m-%d})")
    elif mode == "custom":
        reporter.line(f"certs: custom: pushing {tenant.folder / 'cert.pem'} and key.pem as they are now (replace "
                      "them with the renewed ones first)")
    else:
        reporter.warn(f"certs: {mode}: renewed on the hosts by their own timer; nothing to do here")
        return 0
    return converge(tenant, CERTS_ACTION, reporter, extra={"certs": "renew"})
