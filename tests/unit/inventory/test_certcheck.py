"""Custom certificates are checked before anything is pushed (issue 12 M4): each bad case is made with
`cryptography` and must be reported naming the file and what is wrong, `validate` exiting 2."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from omldeploy.cli.main import main
from omldeploy.inventory.certcheck import check_custom, covers
from omldeploy.render.material import subject_alt_names
from tests.unit.conftest import MakeTenant

NOW = dt.datetime.now(dt.UTC)
FQDN = "oml.example.com"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(key: Any, *, names: tuple[str, ...] = (FQDN,), start: dt.datetime | None = None,
          days: int = 90, issuer: tuple[Any, x509.Name] | None = None) -> x509.Certificate:
    start = start or NOW - dt.timedelta(days=1)
    alt = subject_alt_names(names)
    sign_key, issuer_name = issuer or (key, _name(names[0] if names else "x"))
    b = (x509.CertificateBuilder().subject_name(_name(names[0] if names else "x")).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days)))
    if alt:
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return b.sign(sign_key, hashes.SHA256())


def pem(obj: Any, password: bytes | None = None) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def run(tmp_path: Path, cert: bytes, key: bytes, *, must: tuple[str, ...] = (FQDN,),
        any_of: tuple[str, ...] = ()) -> list[str]:
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    return [f"{f.severity}: {f.message}" for f in check_custom(tmp_path / "cert.pem", tmp_path / "key.pem",
                                                                must_cover=must, any_of=any_of)]


def test_a_good_pair_passes(tmp_path: Path) -> None:
    key = ec_key()
    assert run(tmp_path, pem(issue(key)), pem(key)) == []


def test_a_good_rsa_pair_with_its_chain_passes(tmp_path: Path) -> None:
    ca_key, key = ec_key(), rsa.generate_private_key(65537, 2048)
    ca = issue(ca_key, names=("Example CA",), days=400)
    leaf = issue(key, names=(f"*.{FQDN.split('.', 1)[1]}",), issuer=(ca_key, ca.subject))
    assert run(tmp_path, pem(leaf) + pem(ca), pem(key)) == []


def test_a_key_that_does_not_match(tmp_path: Path) -> None:
    out = run(tmp_path, pem(issue(ec_key())), pem(ec_key()))
    assert out == [f"error: {tmp_path}/key.pem is not the private key of the certificate in {tmp_path}/cert.pem"]


def test_an_expired_certificate(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(issue(key, start=NOW - dt.timedelta(days=100), days=90)), pem(key))
    assert len(out) == 1 and out[0].startswith(f"error: {tmp_path}/cert.pem expired on ")


def test_a_certificate_not_valid_yet(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(issue(key, start=NOW + dt.timedelta(days=2))), pem(key))
    assert len(out) == 1 and out[0].startswith(f"error: {tmp_path}/cert.pem is not valid yet: valid from ")


def test_a_certificate_near_expiry_is_a_warning(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(issue(key, start=NOW - dt.timedelta(days=80), days=90)), pem(key))
    assert len(out) == 1 and out[0].startswith(f"warning: {tmp_path}/cert.pem expires in 9 day(s)")


def test_a_certificate_for_another_name(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(issue(key, names=("other.example.org", "10.9.9.9"))), pem(key))
    assert out == [f"error: {tmp_path}/cert.pem is not valid for {FQDN} (it names: other.example.org, 10.9.9.9)"]


def test_without_fqdn_one_tenant_address_must_be_covered(tmp_path: Path) -> None:
    key = ec_key()
    assert run(tmp_path, pem(issue(key, names=("10.10.10.2",))), pem(key), must=(), any_of=("10.10.10.2",)) == []
    out = run(tmp_path, pem(issue(key, names=("10.9.9.9",))), pem(key), must=(), any_of=("10.10.10.2",))
    assert out == [f"error: {tmp_path}/cert.pem is valid for none of the tenant's addresses 10.10.10.2 "
                   "(it names: 10.9.9.9)"]


def test_a_certificate_without_subject_alt_name(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(issue(key, names=())), pem(key))
    assert out == [f"error: {tmp_path}/cert.pem has no subjectAltName: browsers and phones ignore the common name"]


def test_swapped_files(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(key), pem(issue(key)))
    assert out == [f"error: {tmp_path}/cert.pem holds a private key and {tmp_path}/key.pem a certificate: "
                   "the files are swapped"]


def test_an_encrypted_key(tmp_path: Path) -> None:
    key = ec_key()
    out = run(tmp_path, pem(issue(key)), pem(key, password=b"hunter2-passphrase"))
    assert out == [f"error: {tmp_path}/key.pem is protected by a passphrase: nginx, Kamailio and HAProxy cannot "
                   "ask for it at start"]


def test_a_weak_rsa_key(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 1024)
    out = run(tmp_path, pem(issue(key)), pem(key))
    assert out == [f"error: {tmp_path}/key.pem is an RSA key of 1024 bits: too weak, clients refuse it"]


def test_a_chain_out_of_order(tmp_path: Path) -> None:
    ca_key, key = ec_key(), ec_key()
    ca = issue(ca_key, names=("Example CA",), days=400)
    leaf = issue(key, issuer=(ca_key, ca.subject))
    out = run(tmp_path, pem(leaf) + pem(issue(ec_key(), names=("Other CA",))), pem(key))
    assert out == [f"error: {tmp_path}/cert.pem: certificate 2 did not issue certificate 1 (chain out of order or "
                   "from another certificate)"]


def test_damaged_pem_bodies(tmp_path: Path) -> None:
    out = run(tmp_path, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
              b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert out == [f"error: {tmp_path}/cert.pem has PEM markers but no readable certificate (damaged or truncated)",
                   f"error: {tmp_path}/key.pem has PEM markers but no readable private key (damaged or truncated)"]


@pytest.mark.parametrize(("name", "ok"), [("a.example.com", True), ("A.Example.COM.", True), ("example.com", False),
                                          ("b.a.example.com", False), ("10.0.0.1", True), ("10.0.0.2", False)])
def test_wildcards_cover_one_label(name: str, ok: bool) -> None:
    assert covers(["*.example.com"], ["10.0.0.1"], name) is ok


def test_validate_refuses_a_mismatched_pair_with_exit_2(make_tenant: MakeTenant, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's path: `certs: custom` with a key of another certificate is refused by validate (and
    so by install, before anything is pushed), naming the file, and never printing the key."""
    tenant = make_tenant("aio", name="c2", vars={"fqdn": FQDN})
    inv = tenant.folder / "inventory.yml"
    data = yaml.safe_load(inv.read_text())
    data["all"]["vars"]["certs"] = "custom"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    key, other = ec_key(), ec_key()
    (tenant.folder / "cert.pem").write_bytes(pem(issue(key)))
    (tenant.folder / "key.pem").write_bytes(pem(other))
    capsys.readouterr()
    assert main(["--instances", str(tenant.folder.parent), "validate", "--tenant", "c2"]) == 2
    err = capsys.readouterr()
    text = err.out + err.err
    assert "key.pem is not the private key of the certificate in" in text and "inventory.yml" in text
    assert "PRIVATE KEY" not in text
    (tenant.folder / "key.pem").write_bytes(pem(key))
    assert main(["--instances", str(tenant.folder.parent), "validate", "--tenant", "c2"]) == 0
