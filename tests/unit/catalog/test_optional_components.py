"""fastagi and ami (astami): placed when the release or the inventory asks, gone when it no longer does,
wired into the web app's env, ordered after the app, and ami on the main app node only in HA."""

from __future__ import annotations

from omldeploy.inventory import InventoryError
from omldeploy.inventory.schema import VERSION_KEYS
from omldeploy.placement import place
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

OPTIONAL = {"fastagi_version": "231125.01", "astami_version": "231125.01"}


def _env(bundle, host: str, path: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    text = bundle.host(host).file(path).content.decode()
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_not_asked_for_means_not_placed(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    assert "fastagi_version" not in tenant.versions and "astami_version" not in tenant.versions
    comps = place(tenant).components("omnileads_aio")
    assert "fastagi" not in comps and "ami" not in comps
    env = _env(render_tenant(tenant), "omnileads_aio", "/etc/default/django.env")
    assert "FASTAGI" not in env


def test_inventory_keys_place_them_and_a_later_inventory_without_them_removes_them(make_tenant: MakeTenant) -> None:
    with_them = make_tenant("ait", vars=OPTIONAL)
    bundle = render_tenant(with_them)
    app = {u.name: u for u in bundle.host("omnileads_app").units}
    assert app["fastagi"].image == "docker.io/omnileads/fastagi:231125.01"
    assert app["ami"].image == "docker.io/omnileads/astami:231125.01"
    for host in ("omnileads_data", "omnileads_voice"):
        names = {u.name for u in bundle.host(host).units}
        assert not names & {"fastagi", "ami"}, host
    # same tenant, next inventory without the keys (a downgrade): the units are simply not in the bundle,
    # which the host module's stage/activate turns into stop + disable + unit file removal
    without = make_tenant("ait")
    assert not {u.name for u in render_tenant(without).host("omnileads_app").units} & {"fastagi", "ami"}


def test_fastagi_env_and_the_app_learns_where_it_is(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait", vars={"fastagi_version": "231125.01", "postgres_password": "pg-Secret-Value-77"})
    bundle = render_tenant(tenant)
    app_ip = tenant.with_role("app")[0].lan_ip
    env = _env(bundle, "omnileads_app", "/etc/default/fastagi.env")
    assert env["FASTAGI_HOSTNAME"] == app_ip
    assert env["ASTERISK_HOSTNAME"] == tenant.with_role("voice")[0].lan_ip
    assert env["PGPASSWORD"] == "pg-Secret-Value-77" and env["REDIS_PORT"] == "6379"
    assert env["REDIS_HOSTNAME"] == tenant.with_role("data")[0].lan_ip
    assert bundle.host("omnileads_app").file("/etc/default/fastagi.env").mode == 0o600
    for f in ("django.env", "daphne.env", "omlcron.env"):
        assert _env(bundle, "omnileads_app", f"/etc/default/{f}")["FASTAGI"] == app_ip, f
    # Asterisk's dialplan calls AGI() there too, from the voice host
    assert _env(bundle, "omnileads_voice", "/etc/default/asterisk.env")["FASTAGI"] == app_ip
    unit = next(u for u in bundle.host("omnileads_app").units if u.name == "fastagi")
    assert {"daphne", "omnileads"} <= set(unit.after)
    assert (unit.health["kind"], unit.health["host"], unit.health["port"]) == ("tcp", app_ip, 4573)
    unit_texts = [f.content.decode() for f in bundle.host("omnileads_app").files
                  if f.kind in ("unit", "quadlet") and "fastagi" in f.path]
    assert unit_texts and all("python /app/fastagi.py" in text for text in unit_texts)


def test_ami_env_and_order(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={"astami_version": "231125.01", "ami_password": "ami-Secret-Value-88"})
    bundle = render_tenant(tenant)
    env = _env(bundle, "omnileads_aio", "/etc/default/ami.env")
    assert env == {"TZ": tenant.settings.text("TZ"), "AMI_USER": "omnileads", "AMI_PASSWORD": "ami-Secret-Value-88",
                   "ASTERISK_HOSTNAME": tenant.hosts[0].lan_ip, "REDIS_HOSTNAME": "localhost"}
    unit = next(u for u in bundle.host("omnileads_aio").units if u.name == "ami")
    assert {"asterisk", "redis", "daphne", "omnileads"} <= set(unit.after)
    assert unit.container == "oml-ami-server"


def test_ha_ami_only_on_the_main_app_node_fastagi_on_both(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ha", vars=OPTIONAL)
    p = place(tenant)
    apps = tenant.with_role("app")
    assert len(apps) == 2
    for host in apps:
        comps = p.components(host.name)
        assert "fastagi" in comps
        assert ("ami" in comps) == (host.ha_role == "main"), host.name
    env = _env(render_tenant(tenant), next(h.name for h in apps if h.ha_role == "main"), "/etc/default/ami.env")
    assert env["ASTERISK_HOSTNAME"] == tenant.settings.text("voice_host")  # the voice VIP


def test_release_1_32_1_runs_the_cron_on_its_own_app_tag(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", drop=VERSION_KEYS, vars={"omnileads_release": "1.32.1", "enterprise_edition": True})
    units = {u.name: u.image for u in render_tenant(tenant).host("omnileads_aio").units}
    assert units["omnileads"] == "docker.io/omnileads/omlapp:231030.01-enterprise"
    assert units["omlcron"] == "docker.io/omnileads/omlapp:230928.01-enterprise"


def test_repository_in_a_version_value_and_the_registry(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={"postgres_version": "library/postgres:14.9-bullseye",
                                      "container_image_registry": "10.0.0.5:5000"})
    units = {u.name: u for u in render_tenant(tenant).host("omnileads_aio").units}
    assert units["postgresql"].image == "10.0.0.5:5000/library/postgres:14.9-bullseye"
    assert "10.0.0.5:5000/library/postgres:14.9-bullseye" in units["omnileads"].hook_images


def test_ha_refuses_a_postgres_image_without_repmgr(make_tenant: MakeTenant) -> None:
    try:
        make_tenant("ha", drop=VERSION_KEYS, vars={"omnileads_release": "1.33.4"})
    except InventoryError as exc:
        errs = [p for p in exc.problems if p.severity == "error"]
        assert [p.key for p in errs] == ["omnileads_release"]
        assert "repmgr" in errs[0].message and "omnileads/postgres" in str(errs[0].allowed)
    else:
        raise AssertionError("HA with the official postgres image must be refused")
    tenant = make_tenant("ha", drop=tuple(k for k in VERSION_KEYS if k != "postgres_version"),
                         vars={"omnileads_release": "1.33.4", "postgres_version": "230624.01"})
    assert tenant.versions["postgres_version"] == "230624.01"
    assert tenant.versions["omnileads_version"] == "240410.01"
