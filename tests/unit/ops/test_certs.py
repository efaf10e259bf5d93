"""`certs status`, the renewal `install` does when fewer than 30 days remain, and the expiry in `status`
(issue 12 M4). The near-expiry certificate is issued by the tenant CA: no clock is moved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.ops import certs
from omldeploy.ops.converge import Reporter, renew_if_due
from omldeploy.render.build import render_tenant
from tests.certtools import expiring_server_cert
from tests.unit.conftest import MakeTenant


def _reporter(lines: list[str]) -> Reporter:
    return Reporter(say=lines.append, warn=lambda t: lines.append("WARN " + t))


def test_certs_status_lists_the_ca_and_the_server_certificate(make_tenant: MakeTenant,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    tenant = make_tenant("aio", name="cs")
    render_tenant(tenant)
    inst = str(tenant.folder.parent)
    capsys.readouterr()
    assert main(["--instances", inst, "certs", "status", "--tenant", "cs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_role = {c["certificate"]: c for c in data["certificates"]}
    assert set(by_role) == {"tenant CA", "server"}
    assert by_role["server"]["issuer"] == "tenant CA" and by_role["tenant CA"]["issuer"] == "self (root)"
    assert 823 <= by_role["server"]["days_left"] <= 825 and "10.10.10.2" in by_role["server"]["names"]
    assert not by_role["server"]["expires_soon"]


def test_a_server_certificate_near_expiry_is_reported_then_renewed_by_install(
        make_tenant: MakeTenant, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = make_tenant("aio", name="cr")
    render_tenant(tenant)
    old = expiring_server_cert(tenant.folder, 10)
    inst = str(tenant.folder.parent)
    capsys.readouterr()
    assert main(["--instances", inst, "certs", "status", "--tenant", "cr"]) == 1
    out = capsys.readouterr()
    assert "server certificate expires in 9 day(s): omldeploy certs renew --tenant cr" in out.err

    lines: list[str] = []
    renew_if_due(tenant, _reporter(lines), check=True)  # --check: says so, changes nothing
    assert lines == ["the server certificate expires in 9 day(s): install would renew it"]
    assert (tenant.folder / ".omldeploy/pki/server.pem").read_bytes() == old

    lines.clear()
    renew_if_due(tenant, _reporter(lines), check=False)
    assert len(lines) == 1 and "renewed from the tenant CA, valid until" in lines[0]
    server = {c.role: c for c in certs.describe(tenant)}["server"]
    assert server.days_left >= 824 and not server.due
    pushed = render_tenant(tenant).host("omnileads_aio").file("/etc/omnileads/certs/cert.pem").content
    assert pushed.startswith((tenant.folder / ".omldeploy/pki/server.pem").read_bytes())

    lines.clear()
    renew_if_due(tenant, _reporter(lines), check=False)  # nothing due any more
    assert lines == []


def test_certs_renew_restarts_only_what_uses_the_certificates(make_tenant: MakeTenant) -> None:
    from omldeploy.ops.converge import bundle_for

    tenant = make_tenant("aio", name="cu")
    bundle = bundle_for(tenant, "certs")
    units = sorted(u.name for h in bundle.hosts for u in h.units)
    assert units == ["kamailio", "nginx"]
    paths = {f.path for h in bundle.hosts for f in h.files}
    assert {"/etc/omnileads/certs/cert.pem", "/etc/omnileads/certs/key.pem"} <= paths
    assert not any(p.endswith(("postgresql.service", "django.env")) for p in paths)


def test_certs_status_of_a_custom_certificate(make_tenant: MakeTenant, tmp_path: Path) -> None:
    first = make_tenant("aio", name="cc")
    hb = render_tenant(first).host("omnileads_aio")
    (first.folder / "cert.pem").write_bytes(hb.file("/etc/omnileads/certs/cert.pem").content)
    (first.folder / "key.pem").write_bytes(hb.file("/etc/omnileads/certs/key.pem").content)
    tenant = make_tenant("aio", name="cc", vars={"certs": "custom"})
    infos = certs.describe(tenant)
    assert [(c.role, c.issuer) for c in infos] == [("custom", "omldeploy cc CA")]
