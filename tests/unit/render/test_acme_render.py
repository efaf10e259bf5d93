"""`certs: acme` in the bundle: the self-signed pair only as a bootstrap, the challenge server block and
port 80 on nginx, the script with every value quoted, the renewal timer, issuance after nginx starts."""

from __future__ import annotations

import shlex

from omldeploy.components import acme
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

ACME = {"certs": "acme", "fqdn": "contact.example.com", "acme_email": "ops@example.com"}


def test_aio_bundle(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("aio", vars=ACME))
    hb = bundle.host("omnileads_aio")
    cert, key = hb.file("/etc/omnileads/certs/cert.pem"), hb.file("/etc/omnileads/certs/key.pem")
    assert cert.only_if_missing and key.only_if_missing and key.secret and key.mode == 0o600
    nginx = next(u for u in hb.units if u.name == "nginx")
    assert nginx.post_start == (f"{acme.SCRIPT} issue",)
    assert nginx.hook_images == ("docker.io/goacme/lego:v4.9.1",)
    assert acme.SCRIPT in nginx.files and acme.NGINX_CONF in nginx.files
    unit = hb.file("/etc/systemd/system/nginx.service").content.decode()
    assert f"--volume={acme.NGINX_CONF}:/etc/nginx/conf.d/oml-acme.conf:ro" in unit
    assert f"--volume={acme.WEBROOT}:{acme.WEBROOT_IN_CONTAINER}:ro" in unit
    conf = hb.file(acme.NGINX_CONF).content.decode()
    assert "listen 80;" in conf and f"root {acme.WEBROOT_IN_CONTAINER};" in conf
    assert acme.TIMER in hb.host_units and acme.SERVICE not in hb.host_units
    assert "ExecStart=/usr/local/bin/oml_acme renew" in hb.file(f"/etc/systemd/system/{acme.SERVICE}").content.decode()
    script = hb.file(acme.SCRIPT)
    assert script.mode == 0o755 and not script.secret
    text = script.content.decode()
    assert "DOMAIN=contact.example.com" in text and "SERVER=https://acme-v02.api.letsencrypt.org/directory" in text
    assert "--http --http.webroot /webroot" in text and "SERVER_CA=''" in text
    assert f"DATA={acme.data_dir('https://acme-v02.api.letsencrypt.org/directory')}" in text


def test_each_acme_server_has_its_own_lego_folder(make_tenant: MakeTenant) -> None:
    """A certificate of Let's Encrypt staging must not pass for production's after the directory changes."""
    staging = "https://acme-staging-v02.api.letsencrypt.org/directory"
    text = render_tenant(make_tenant("aio", vars={**ACME, "acme_directory": staging})).host(
        "omnileads_aio").file(acme.SCRIPT).content.decode()
    assert f"DATA={acme.data_dir(staging)}" in text
    assert acme.data_dir(staging) != acme.data_dir("https://acme-v02.api.letsencrypt.org/directory")


def test_selfsigned_pair_stays_managed_without_acme(make_tenant: MakeTenant) -> None:
    hb = render_tenant(make_tenant("aio")).host("omnileads_aio")
    assert not hb.file("/etc/omnileads/certs/cert.pem").only_if_missing
    nginx = next(u for u in hb.units if u.name == "nginx")
    assert nginx.post_start == () and acme.TIMER not in hb.host_units
    assert not any(f.path == acme.SCRIPT for f in hb.files)


def test_ait_acme_on_the_app_host_only(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ait", vars=ACME))
    with_script = [hb.host for hb in bundle.hosts if any(f.path == acme.SCRIPT for f in hb.files)]
    assert with_script == ["omnileads_app"]


def test_dns_01_and_a_private_server_ca(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={**ACME, "acme_challenge": "dns", "acme_dns_hook": "/opt/dns/hook.sh",
                                      "acme_directory": "https://ca.internal:14000/dir"})
    (tenant.folder / "acme_server_ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    hb = render_tenant(tenant).host("omnileads_aio")
    text = hb.file(acme.SCRIPT).content.decode()
    assert "CHALLENGE=dns" in text and "HOOK=/opt/dns/hook.sh" in text
    assert f"SERVER_CA={acme.SERVER_CA}" in text and hb.file(acme.SERVER_CA).content.startswith(b"-----BEGIN")
    assert not any(f.path == acme.NGINX_CONF for f in hb.files)  # no port 80 server block for DNS-01
    unit = hb.file("/etc/systemd/system/nginx.service").content.decode()
    assert "oml-acme.conf" not in unit


def test_values_reach_the_script_shell_quoted(make_tenant: MakeTenant) -> None:
    """The patterns of inventory/acme.py already refuse metacharacters; quoting is the second fence."""
    hb = render_tenant(make_tenant("aio", vars={**ACME, "acme_email": "o+ps@example.com"})).host("omnileads_aio")
    lines = dict(line.split("=", 1) for line in hb.file(acme.SCRIPT).content.decode().splitlines()
                 if line[:1].isupper() and "=" in line and " " not in line.split("=", 1)[0])
    assert shlex.split(lines["EMAIL"]) == ["o+ps@example.com"]
