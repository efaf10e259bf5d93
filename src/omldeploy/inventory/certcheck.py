"""Checks of the operator's own certificate (`certs: custom`: cert.pem and key.pem in the tenant folder).

Before issue 12 (M4) only the PEM markers were looked at, so a key of another certificate, an expired
or not yet valid certificate, one for another name, swapped files, a passphrase-protected key or an
RSA-1024 key all passed `validate` and broke nginx/Kamailio/HAProxy at restart on the hosts. Each is
checked here with `cryptography`, before anything is pushed, and reported naming the file and what is
wrong. The messages never quote the key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_PEM_BYTES = 1 << 20  # a certificate chain or key is a few KB; anything larger is not one
MIN_RSA_BITS = 2048
WARN_DAYS = 30  # same threshold as the renewal of the selfsigned certificate


@dataclass(frozen=True)
class Finding:
    message: str
    allowed: str | None = None
    severity: str = "error"


def check_custom(cert_path: Path, key_path: Path, *, must_cover: Sequence[str], any_of: Sequence[str],
                 now: dt.datetime | None = None) -> list[Finding]:
    """Everything wrong with the pair. `must_cover`: names the certificate has to hold (the FQDN);
    `any_of`: when nothing must be covered, the addresses users may reach the tenant at (one is enough)."""
    now = now or dt.datetime.now(dt.UTC)
    cert_raw, key_raw = _read(cert_path), _read(key_path)
    out: list[Finding] = []
    if cert_raw is None or key_raw is None:
        out.extend(Finding(f"{p} cannot be read or is larger than {MAX_PEM_BYTES} bytes")
                   for p, raw in ((cert_path, cert_raw), (key_path, key_raw)) if raw is None)
        return out
    if b"PRIVATE KEY-----" in cert_raw and b"BEGIN CERTIFICATE-----" in key_raw:
        return [Finding(f"{cert_path} holds a private key and {key_path} a certificate: the files are swapped",
                        allowed="cert.pem: the certificate (then its chain), key.pem: its private key")]
    certs = _certificates(cert_path, cert_raw, out)
    key = _private_key(key_path, key_raw, out)
    if not certs:
        return out
    leaf = certs[0]
    out.extend(_validity(cert_path, leaf, now))
    out.extend(_names(cert_path, leaf, must_cover, any_of))
    out.extend(_chain(cert_path, certs))
    if key is not None:
        out.extend(_key_strength(key_path, key))
        if not _same_public_key(key.public_key(), leaf.public_key()):
            out.append(Finding(f"{key_path} is not the private key of the certificate in {cert_path}",
                               allowed="the key the certificate was issued for"))
    return out


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PEM_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_PEM_BYTES else None


def _certificates(path: Path, raw: bytes, out: list[Finding]) -> list[Any]:
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(raw))
    except ValueError:
        out.append(Finding(f"{path} has PEM markers but no readable certificate (damaged or truncated)",
                           allowed="the server certificate in PEM, then its intermediate certificates"))
        return []


def _private_key(path: Path, raw: bytes, out: list[Finding]) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if b"ENCRYPTED" in raw:
        out.append(Finding(f"{path} is protected by a passphrase: nginx, Kamailio and HAProxy cannot ask for it "
                           "at start", allowed="the key without a passphrase (e.g. openssl pkey -in key.pem "
                                               "-out key.pem), kept private (0600)"))
        return None
    try:
        return serialization.load_pem_private_key(raw, None)
    except TypeError:  # "Password was not given but private key is encrypted"
        out.append(Finding(f"{path} is protected by a passphrase: nginx, Kamailio and HAProxy cannot ask for it "
                           "at start", allowed="the key without a passphrase, kept private (0600)"))
    except (ValueError, UnsupportedAlgorithm):
        out.append(Finding(f"{path} has PEM markers but no readable private key (damaged or truncated)"))
    return None


def _validity(path: Path, cert: Any, now: dt.datetime) -> list[Finding]:
    before, after = _utc(cert, "not_valid_before"), _utc(cert, "not_valid_after")
    if before > now:
        return [Finding(f"{path} is not valid yet: valid from {before:%Y-%m-%d %H:%M} UTC",
                        allowed="a certificate already valid (check the clock of the machine that issued it)")]
    if after <= now:
        return [Finding(f"{path} expired on {after:%Y-%m-%d %H:%M} UTC", allowed="a renewed certificate")]
    left = after - now
    if left < dt.timedelta(days=WARN_DAYS):
        return [Finding(f"{path} expires in {left.days} day(s), on {after:%Y-%m-%d} UTC: renew it before then",
                        severity="warning")]
    return []


def _utc(cert: Any, attr: str) -> dt.datetime:
    value = getattr(cert, attr + "_utc", None)  # cryptography >= 42
    return value if isinstance(value, dt.datetime) else getattr(cert, attr).replace(tzinfo=dt.UTC)


def _names(path: Path, cert: Any, must_cover: Sequence[str], any_of: Sequence[str]) -> list[Finding]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [Finding(f"{path} has no subjectAltName: browsers and phones ignore the common name",
                        allowed="a certificate whose subjectAltName lists the tenant's name")]
    dns = [str(n).lower() for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    held = ", ".join([*dns, *ips]) or "none"
    missing = [n for n in must_cover if not covers(dns, ips, n)]
    if missing:
        return [Finding(f"{path} is not valid for {', '.join(missing)} (it names: {held})",
                        allowed="a certificate whose subjectAltName includes the fqdn")]
    if not must_cover and any_of and not any(covers(dns, ips, n) for n in any_of):
        return [Finding(f"{path} is valid for none of the tenant's addresses {', '.join(any_of)} (it names: "
                        f"{held})", allowed="set fqdn to the certificate's name, or a certificate for one of "
                                            "these addresses")]
    return []


def covers(dns: Sequence[str], ips: Sequence[str], name: str) -> bool:
    """Whether the subjectAltName entries cover `name`, as TLS clients match (RFC 6125: a wildcard stands
    for exactly one leftmost label)."""
    try:
        return str(ipaddress.ip_address(name)) in ips
    except ValueError:
        pass
    name = name.lower().rstrip(".")
    for pattern in dns:
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def _chain(path: Path, certs: list[Any]) -> list[Finding]:
    """Each certificate after the first must have issued the one before it (nginx sends them in order)."""
    from cryptography.exceptions import InvalidSignature

    for i, (child, parent) in enumerate(itertools.pairwise(certs), start=1):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            return [Finding(f"{path}: certificate {i + 1} did not issue certificate {i} (chain out of order or "
                            "from another certificate)",
                            allowed="the server certificate first, then each issuer in turn")]
    return []


def _key_strength(path: Path, key: Any) -> list[Finding]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            return [Finding(f"{path} is an RSA key of {key.key_size} bits: too weak, clients refuse it",
                            allowed=f"RSA of {MIN_RSA_BITS} bits or more, or an EC key (P-256, P-384)")]
        return []
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return []
    return [Finding(f"{path} is a {type(key).__name__.removeprefix('_')} key, which the hosts' TLS servers do not "
                    "all accept", allowed=f"RSA of {MIN_RSA_BITS} bits or more, or an EC key (P-256, P-384)")]


def _same_public_key(a: Any, b: Any) -> bool:
    from cryptography.hazmat.primitives import serialization

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(a.public_bytes(*spki) == b.public_bytes(*spki))
