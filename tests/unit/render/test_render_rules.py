"""Rendering rules an operator relies on: secrets, per-tenant keys, unit styles, addresses."""

from __future__ import annotations

import re

import pytest

from omldeploy.components.base import ConfigFile, envfile
from omldeploy.components.registry import by_name
from omldeploy.placement import compute_facts, place
from omldeploy.render import units
from omldeploy.render.build import RenderError, render_tenant
from tests.unit.conftest import MakeTenant


def _env(bundle, host: str, path: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    text = bundle.host(host).file(path).content.decode()
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_every_file_holding_a_password_is_0600(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait", vars={"postgres_password": "s3cr3t-Pg-pass", "ami_password": "ami-Secret-9"})
    bundle = render_tenant(tenant)
    holders = [(h.host, f.path) for h in bundle.hosts for f in h.files
               if b"s3cr3t-Pg-pass" in f.content or b"ami-Secret-9" in f.content]
    assert holders, "passwords should reach the env files"
    for h in bundle.hosts:
        for f in h.files:
            if b"s3cr3t-Pg-pass" in f.content or b"ami-Secret-9" in f.content:
                assert f.mode == 0o600 and f.secret, (h.host, f.path, oct(f.mode))


def test_a_secret_in_a_world_readable_file_is_refused(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = make_tenant("aio", vars={"postgres_password": "leaky-password-1"})
    comp = by_name("nginx")
    monkeypatch.setattr(type(comp), "configs",
                        lambda self, ctx: [ConfigFile("/etc/omnileads/leak.conf",
                                                      f"pw={ctx.tenant.settings.text('postgres_password')}\n", 0o644)])
    with pytest.raises(RenderError, match=r"leak\.conf \(0644\)"):
        render_tenant(tenant)


def test_selfsigned_material_is_per_tenant_and_stable(make_tenant: MakeTenant) -> None:
    a = make_tenant("aio", name="tenant-a")
    b = make_tenant("aio", name="tenant-b")
    key_a = render_tenant(a).host("omnileads_aio").file("/etc/omnileads/certs/key.pem").content
    key_b = render_tenant(b).host("omnileads_aio").file("/etc/omnileads/certs/key.pem").content
    assert key_a != key_b
    assert render_tenant(a).host("omnileads_aio").file("/etc/omnileads/certs/key.pem").content == key_a
    assert (a.folder / ".omldeploy/pki/ca.key").stat().st_mode & 0o777 == 0o600
    assert (a.folder / ".omldeploy/secrets.yml").stat().st_mode & 0o777 == 0o600


def test_custom_certs_come_from_the_tenant_folder(make_tenant: MakeTenant) -> None:
    first = make_tenant("aio", name="c1")
    selfsigned = render_tenant(first).host("omnileads_aio")
    (first.folder / "cert.pem").write_bytes(selfsigned.file("/etc/omnileads/certs/cert.pem").content)
    (first.folder / "key.pem").write_bytes(selfsigned.file("/etc/omnileads/certs/key.pem").content)
    tenant = make_tenant("aio", name="c1", vars={"certs": "custom"})
    hb = render_tenant(tenant).host("omnileads_aio")
    assert hb.file("/etc/omnileads/certs/key.pem").content == (first.folder / "key.pem").read_bytes()
    with pytest.raises(KeyError):
        hb.file("/etc/omnileads/certs/ca.pem")


@pytest.mark.parametrize(("style", "classic", "quadlet"), [("classic", True, False), ("quadlet", False, True),
                                                            ("auto", True, True)])
def test_unit_style(make_tenant: MakeTenant, style: str, classic: bool, quadlet: bool) -> None:
    hb = render_tenant(make_tenant("aio", vars={"podman_unit_style": style})).host("omnileads_aio")
    paths = {f.path for f in hb.files}
    assert ("/etc/systemd/system/redis.service" in paths) is classic
    assert ("/etc/containers/systemd/redis.container" in paths) is quadlet
    assert hb.unit_style == style


def test_aio_exporters_target_where_the_servers_listen(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("aio", vars={"postgres_password": "p@ss/word"}))
    pg = _env(bundle, "omnileads_aio", "/etc/default/prometheus_postgres.env")
    assert pg["DATA_SOURCE_NAME"].startswith("postgresql://omnileads:p%40ss%2Fword@localhost:5432/")
    assert _env(bundle, "omnileads_aio", "/etc/default/prometheus_redis.env")["REDIS_ADDR"] == "localhost:6379"
    assert _env(bundle, "omnileads_aio", "/etc/default/redis.env")["BIND_IP"] == "localhost"


def test_ait_addresses(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ait"))
    django = _env(bundle, "omnileads_app", "/etc/default/django.env")
    assert django["PGHOST"] == "10.10.10.2" and django["REDIS_HOSTNAME"] == "10.10.10.2"
    assert django["ASTERISK_HOSTNAME"] == "10.10.10.3"
    assert django["S3_ENDPOINT_MINIO"] == "http://10.10.10.2:9000"
    assert django["S3_ENDPOINT"] == "https://10.10.10.4"
    asterisk = _env(bundle, "omnileads_voice", "/etc/default/asterisk.env")
    assert asterisk["S3_ENDPOINT"] == "http://10.10.10.2:9000"
    assert asterisk["HOMER_ENABLE"] == "false"
    cron = _env(bundle, "omnileads_app", "/etc/default/omlcron.env")
    assert cron["CALLREC_DEVICE"] == "s3"  # the seed dropped it with local MinIO


def test_cloud_uses_managed_services(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("cloud")
    placement = place(tenant)
    everywhere = {c for comps in placement.by_host.values() for c in (x.name for x in comps)}
    assert "postgresql" not in everywhere and "minio" not in everywhere and "prometheus_postgres" not in everywhere
    bundle = render_tenant(tenant)
    django = _env(bundle, "omnileads_app", "/etc/default/django.env")
    assert django["PGHOST"] == "private-oml-pgsql.db.example.com" and django["PGPORT"] == "25060"
    assert django["PGSSLMODE"] == "require" and django["S3_ENDPOINT"] == "https://sfo3.digitaloceanspaces.com"
    assert _env(bundle, "omnileads_voice", "/etc/default/asterisk.env")["PGSSL"] == "true"


def test_wan_address_is_never_fetched(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={"infra_env": "cloud"}, hosts={"omnileads_aio": {"ansible_host": "190.19.150.9"}})
    assert compute_facts(tenant).omni_ip_wan == "190.19.150.9"
    tenant = make_tenant("aio", vars={"infra_env": "cloud", "omni_ip_wan": "190.19.150.8"},
                         hosts={"omnileads_aio": {"ansible_host": "190.19.150.9"}})
    assert compute_facts(tenant).omni_ip_wan == "190.19.150.8"


def test_ha_placement_by_role_not_by_name(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ha")
    placement = place(tenant)
    assert "redis" in placement.components("app_1") and "redis" in placement.components("app_2")
    sentinels = sorted(h for h, comps in placement.by_host.items() if any(c.name == "sentinel" for c in comps))
    assert sentinels == ["app_2", "haproxy_1", "voice_1", "voice_2"]
    bundle = render_tenant(tenant)
    redis_2 = _env(bundle, "app_2", "/etc/default/redis.env")
    # the role is decided before each start (redis_role.py), the inventory's only as the last resort
    assert redis_2["BIND_IP"] == "172.16.101.106" and "ROLE" not in redis_2
    gate = bundle.host("app_2").file("/etc/systemd/system/redis.service").content.decode()
    assert ("--self 172.16.101.106 --default-main 172.16.101.105" in gate
            and "--env-file=/run/omnileads/redis-role.env" in gate)
    cron = {u.name: u.enabled for u in bundle.host("app_2").units}
    assert cron["omlcron"] is False
    # keepalived's CRON instance starts omlcron where it is MASTER; no app node starts it at boot
    assert [u.enabled for h in ("app_1", "app_2") for u in bundle.host(h).units if u.name == "omlcron"] == [False] * 2
    keepalived = bundle.host("voice_1").file("/etc/omnileads/keepalived.conf")
    assert keepalived.mode == 0o600 and b"auth_pass 1111" not in keepalived.content


def test_enterprise_uses_one_image_for_the_whole_omlapp_family(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("aio", vars={"enterprise_edition": True}))
    images = {u.name: u.image for u in bundle.host("omnileads_aio").units}
    enterprise = "docker.io/omnileads/omlapp:1.27.1-enterprise"
    assert images["omnileads"] == images["daphne"] == images["omlcron"] == enterprise
    assert "redis2postgres" in images


def test_registry_override_keeps_repository_paths(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("aio", vars={"container_image_registry": "10.99.0.1:5000"}))
    images = {u.name: u.image for u in bundle.host("omnileads_aio").units}
    assert images["postgresql"] == "10.99.0.1:5000/omnileads/postgres:230204.01"
    assert images["minio"].startswith("10.99.0.1:5000/minio/minio:")


def test_systemd_quoting() -> None:
    assert units.systemd_quote("plain-arg") == "plain-arg"
    assert units.systemd_quote("a b") == '"a b"'
    assert units.systemd_quote("50%$HOME") == '"50%%$$HOME"'
    with pytest.raises(ValueError, match="several lines"):
        envfile([("A", "x\ny")])


def test_every_host_directory_a_unit_bind_mounts_is_created_or_exists(make_tenant: MakeTenant) -> None:
    """Podman refuses to start a container whose bind-mount source is missing. Every absolute host path
    a unit mounts must be a rendered file, a directory the stage step creates, or a path every Debian
    host has; the journal folders Promtail reads are created (a host may keep only one of them)."""
    always_there = {"/etc/machine-id", "/etc/localtime", "/var/lib/containers", "/", "/sys", "/proc"}
    checked, promtails = 0, 0
    for layout in ("aio", "ait", "cloud", "ha"):
        tenant = make_tenant(layout, vars={"loki_host": "10.0.0.99"} if layout == "ha" else None)
        bundle = render_tenant(tenant)
        for hb in bundle.hosts:
            made = {d for d, _ in hb.directories}
            files = {f.path for f in hb.files}
            units = [f for f in hb.files if f.kind in ("unit", "quadlet")]
            assert units
            for unit in units:
                for source in re.findall(r"(?:-v |Volume=)(/[^:\s]+):", unit.content.decode()):
                    covered = (source in files or source in always_there
                               or any(source == d or source.startswith(d + "/") for d in made)
                               or any(f.startswith(source + "/") for f in files))
                    assert covered, (layout, hb.host, unit.path, source)
                    checked += 1
            if any(u.name == "promtail" for u in hb.units):
                promtails += 1
                assert {"/var/log/journal", "/run/log/journal"} <= made
                tmpfiles = hb.file("/etc/tmpfiles.d/omldeploy-promtail.conf").content.decode()
                assert tmpfiles.split() == ["d", "/run/log/journal", "-", "-", "-", "-"]
    assert checked > 20 and promtails >= 5, (checked, promtails)
