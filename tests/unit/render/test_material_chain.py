"""The tenant PKI (issue 12 M5): concurrent first-time generation, the chain checked on load, damaged
files named, and renewal of the selfsigned server certificate (M4)."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from omldeploy.inventory.state_errors import StateError
from omldeploy.render import material

NAMES = ("10.0.0.5", "localhost", "oml.example.com")


def chain_ok(folder: Path) -> bool:
    pki = folder / material.MATERIAL_DIR / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((pki / "server.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / "server.key").read_bytes(), None)
    cert.verify_directly_issued_by(ca)  # raises when mixed
    return material._same_key(ca_key.public_key(), ca.public_key()) and \
        material._same_key(key.public_key(), cert.public_key())


def _generate(folder: str, start: float) -> bytes:
    while time.time() < start:  # all processes leave the gate together
        pass
    return material.tls_material(Path(folder), "selfsigned", NAMES).cert_pem


def test_concurrent_first_time_generation_always_gives_one_valid_chain(tmp_path: Path) -> None:
    # spawned, not forked: a fork of the test process copies locks other threads held at that instant
    # (the suite runs threads), and a worker stuck on one hung the whole run; a bounded wait on each trial
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        for trial in range(20):
            folder = tmp_path / f"t{trial}"
            folder.mkdir()
            start = time.time() + (3.0 if trial == 0 else 0.05)  # the first trial also waits for the workers
            results = pool.starmap_async(_generate, [(str(folder), start)] * 6).get(timeout=120)
            assert len(set(results)) == 1, f"trial {trial}: the processes saw different certificates"
            assert chain_ok(folder), f"trial {trial}"
            assert results[0] == material.tls_material(folder, "selfsigned", NAMES).cert_pem
            leftovers = [p.name for p in (folder / ".omldeploy/pki").iterdir() if p.name.endswith(".tmp")]
            assert leftovers == []


def _pki(tmp_path: Path) -> Path:
    material.tls_material(tmp_path, "selfsigned", NAMES)
    return tmp_path / material.MATERIAL_DIR / "pki"


def test_a_mixed_server_pair_is_reissued_from_the_ca(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    other = tmp_path / "other"
    material.tls_material(other, "selfsigned", NAMES)
    (pki / "server.key").write_bytes((other / ".omldeploy/pki/server.key").read_bytes())  # key of another chain
    assert not material._server_ok(pki, (pki / "ca.pem").read_bytes())
    tls = material.tls_material(tmp_path, "selfsigned", NAMES)
    assert chain_ok(tmp_path) and tls.key_pem == (pki / "server.key").read_bytes()


def test_a_server_certificate_of_another_ca_is_reissued(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    other = tmp_path / "other"
    material.tls_material(other, "selfsigned", NAMES)
    for name in ("server.key", "server.pem"):
        (pki / name).write_bytes((other / ".omldeploy/pki" / name).read_bytes())
    material.tls_material(tmp_path, "selfsigned", NAMES)
    assert chain_ok(tmp_path)


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"a": 1}', b"\xff\xfe"])
def test_a_damaged_sans_file_reissues_the_server_certificate(tmp_path: Path, damage: bytes) -> None:
    pki = _pki(tmp_path)
    (pki / "server.sans.json").write_bytes(damage)
    material.tls_material(tmp_path, "selfsigned", NAMES)
    assert chain_ok(tmp_path) and material._server_sans(pki) == list(NAMES)


@pytest.mark.parametrize(("name", "damage", "says"), [
    ("ca.key", b"garbage", "ca.key: is damaged: not an unencrypted PEM private key"),
    ("ca.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ca.key: is damaged"),
    ("ca.pem", b"\x00\x01", "ca.pem: is damaged: not a PEM certificate"),
])
def test_a_damaged_ca_is_an_error_naming_the_file(tmp_path: Path, name: str, damage: bytes, says: str) -> None:
    pki = _pki(tmp_path)
    (pki / name).write_bytes(damage)
    with pytest.raises(StateError) as err:
        material.tls_material(tmp_path, "selfsigned", NAMES)
    assert says in str(err.value) and "delete .omldeploy/pki" in str(err.value)


def test_a_ca_key_of_another_ca_is_an_error(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    other = tmp_path / "other"
    material.tls_material(other, "selfsigned", NAMES)
    (pki / "ca.key").write_bytes((other / ".omldeploy/pki/ca.key").read_bytes())
    with pytest.raises(StateError, match=r"ca\.key: does not belong to ca\.pem"):
        material.tls_material(tmp_path, "selfsigned", NAMES)


def test_modes_of_the_generated_files(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    modes = {p.name: p.stat().st_mode & 0o777 for p in pki.iterdir()}
    assert modes["ca.key"] == modes["server.key"] == 0o600
    assert modes["ca.pem"] == modes["server.pem"] == 0o644


def test_renewal_is_due_only_near_expiry_and_keeps_names_and_ca(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    before = (pki / "server.pem").read_bytes()
    assert material.renew_server(tmp_path, material.RENEW_WITHIN_DAYS) is None  # 825 days left
    assert (pki / "server.pem").read_bytes() == before
    old, new = material.renew_server(tmp_path, None) or (None, None)
    assert old is not None and new is not None and new >= old
    cert = x509.load_pem_x509_certificate((pki / "server.pem").read_bytes())
    assert (pki / "server.pem").read_bytes() != before and chain_ok(tmp_path)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted([*sans.get_values_for_type(x509.DNSName), *map(str, sans.get_values_for_type(x509.IPAddress))]) \
        == sorted(NAMES)
    left = material.not_after(cert) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=material.SERVER_DAYS - 1) < left <= dt.timedelta(days=material.SERVER_DAYS)


def test_renewal_without_a_certificate_does_nothing(tmp_path: Path) -> None:
    assert material.renew_server(tmp_path, None) is None
    assert not (tmp_path / material.MATERIAL_DIR / "pki").exists()


def test_plan_with_a_damaged_ca_key_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from omldeploy.cli.main import main

    inst = tmp_path / "instances"
    assert main(["--instances", str(inst), "tenant", "new", "pk", "--layout", "aio"]) == 0
    assert main(["--instances", str(inst), "plan", "--tenant", "pk"]) == 0
    (inst / "pk/.omldeploy/pki/ca.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\ntruncated")
    (inst / "pk/.omldeploy/pki/server.sans.json").write_bytes(b"\x00{")
    capsys.readouterr()
    assert main(["--instances", str(inst), "plan", "--tenant", "pk"]) == 2
    err = capsys.readouterr().err
    assert "pki/ca.key" in err and "is damaged" in err and "internal error" not in err
