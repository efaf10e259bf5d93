"""`certs: acme`: the settings it needs, the values refused before they reach a shell or nginx, and the
layouts it does not support (exit 2 with the key named, never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omldeploy.inventory import InventoryError, load_tenant
from omldeploy.inventory.acme import LETS_ENCRYPT
from tests.unit.conftest import MakeTenant, example
from tests.unit.inventory.conftest import run_cli

ACME = {"certs": "acme", "fqdn": "contact.example.com", "acme_email": "ops@example.com"}


def _problems(make_tenant: MakeTenant, layout: str = "aio", **vars: object) -> list[str]:
    with pytest.raises(InventoryError) as err:
        make_tenant(layout, vars={**ACME, **vars})
    return [f"{p.key}: {p.message}" for p in err.value.problems if p.severity == "error"]


def test_defaults_http_01_against_lets_encrypt(make_tenant: MakeTenant) -> None:
    s = make_tenant("aio", vars=ACME).settings
    assert (s.text("certs"), s.text("acme_directory"), s.text("acme_challenge")) == ("acme", LETS_ENCRYPT, "http")


def test_needs_a_dns_name_and_a_contact(make_tenant: MakeTenant) -> None:
    with pytest.raises(InventoryError) as err:
        make_tenant("aio", vars={"certs": "acme"})
    keys = {p.key for p in err.value.problems if p.severity == "error"}
    assert {"fqdn", "acme_email"} <= keys
    assert any(m.startswith("fqdn: is an IP address") for m in _problems(make_tenant, fqdn="192.0.2.7"))


@pytest.mark.parametrize("directory", [
    "http://acme.example.com/directory",  # not https
    "https://user:pw@acme.example.com/directory",  # credentials would be printed and logged
    "https://acme.example.com/dir?x=1",
    "https://acme.example.com/dir'; reboot; '",
    "https://acme.example.com/dir\n",
])
def test_directory_must_be_a_plain_https_url(make_tenant: MakeTenant, directory: str) -> None:
    found = _problems(make_tenant, acme_directory=directory)
    assert any(m.startswith("acme_directory: ") for m in found), found


@pytest.mark.parametrize("email", ["ops@example.com\n", "$(id)@example.com", "ops example@x.org", "ops"])
def test_email_must_be_plain(make_tenant: MakeTenant, email: str) -> None:
    assert any(m.startswith("acme_email:") for m in _problems(make_tenant, acme_email=email))


def test_dns_01_needs_a_hook_with_a_plain_absolute_path(make_tenant: MakeTenant) -> None:
    assert any(m.startswith("acme_dns_hook: missing") for m in _problems(make_tenant, acme_challenge="dns"))
    for bad in ("relative/hook", "/usr/local/bin/../../tmp/x", "/opt/hook; rm -rf /", "/opt/$(id)"):
        assert any(m.startswith("acme_dns_hook: is not an absolute path") for m in
                   _problems(make_tenant, acme_challenge="dns", acme_dns_hook=bad)), bad
    s = make_tenant("aio", vars={**ACME, "acme_challenge": "dns", "acme_dns_hook": "/usr/local/bin/dns-hook"})
    assert s.settings.text("acme_dns_hook") == "/usr/local/bin/dns-hook"


def test_refused_in_high_availability(make_tenant: MakeTenant) -> None:
    assert any(m.startswith("certs: acme is not supported in high-availability")
               for m in _problems(make_tenant, "ha"))


def test_validate_exits_2_naming_the_key(tmp_path: Path) -> None:
    data = example("ha")
    data["all"]["vars"].update(ACME)
    folder = tmp_path / "instances" / "t1"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli("--instances", str(tmp_path / "instances"), "validate", "--tenant", "t1")
    assert result.code == 2, result
    assert "certs: acme is not supported in high-availability" in result.out + result.err
    assert "Traceback" not in result.out + result.err


def test_acme_keys_without_acme_are_a_warning(make_tenant: MakeTenant, tmp_path: Path) -> None:
    tenant = make_tenant("aio", vars={"acme_email": "ops@example.com"})
    assert tenant.settings.text("certs") == "selfsigned"
    data = example("aio")
    data["all"]["vars"]["acme_email"] = "ops@example.com"
    folder = tmp_path / "w" / "t2"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_cli("--instances", str(tmp_path / "w"), "validate", "--tenant", "t2")
    assert result.code == 0 and "acme_email: is ignored unless certs is acme" in result.out + result.err


def test_private_acme_server_ca_must_be_pem(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars=ACME)
    (tenant.folder / "acme_server_ca.pem").write_text("not a certificate")
    with pytest.raises(InventoryError) as err:
        load_tenant(tenant.folder, "t1")
    assert any("acme_server_ca.pem is not a PEM certificate" in p.message for p in err.value.problems)
