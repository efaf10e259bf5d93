"""The seed README's own inventory snippets load, validate and render.

Each snippet is embedded verbatim (only trailing blanks dropped, which YAML ignores). What the snippet
lacks to be a whole inventory is added from an explicit, separate completion dict, so a reader sees at a
glance what the README leaves out. The HA example ships two mistakes (RO VIP = RW VIP, and
`redis_ip_main` is voice_2's address); the test proves the validator rejects exactly those two and that
the README's own VM plan fixes them.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest

from omldeploy.inventory import Tenant
from omldeploy.inventory.model import Shape
from omldeploy.render.build import render_tenant
from omldeploy.render.bundle import Bundle
from tests.unit.inventory.conftest import TenantDir, describe, dump, errors

# ---------------------------------------------------------------------------- README snippets, verbatim

README_AIO_HOSTS = """\
---
all:
  hosts:
    omnileads_aio:
      omlaio: true
      ansible_host: X.X.X.X
      omni_ip_lan: Z.Z.Z.Z
      ansible_ssh_port: 22
"""

README_AIO_VARS = """\
vars:
    # --- ansible user auth connection
    ansible_user: root
    # --- Activate the OMniLeads Enterprise Edition - with "AAAA" licensed.
    # --- on the contrary you will deploy OMniLeads OSS Edition with GPLV3 licensed.
    enterprise_edition: true
    # --- versions of each image to deploy
    # --- versions of each image to deploy
    omnileads_version: 1.26.0
    websockets_version: 230204.01
    nginx_version: 230215.01
    kamailio_version: 230204.01
    asterisk_version: 230204.01
    rtpengine_version: 230204.01
    postgres_version: 230204.01
    # --- "cloud" instance (access through public IP)
    # --- or "lan" instance (access through private IP)
    # --- in order to set NAT or Publica ADDR for RTP voice packages
    infra_env: cloud
    # --- If you have an DNS FQDN resolution, you must to uncomment and set this param
    # --- otherwise leave commented to work invoking through an IP address
    #fqdn: fidelio.sephir.tech
"""

README_AIT_HOSTS = """\
all:
  hosts:
    omnileads_data:
      omldata: true
      ansible_host: 10.10.10.2
      omni_ip_lan: 10.10.10.2
      ansible_ssh_port: 22
    omnileads_voice:
      omlvoice: true
      ansible_host: 10.10.10.3
      omni_ip_lan: 10.10.10.3
      ansible_ssh_port: 22
    omnileads_app:
      omlapp: true
      ansible_host: 10.10.10.4
      omni_ip_lan: 10.10.10.4
      ansible_ssh_port: 22
"""

README_AIT_INFRA_ENV = """\
infra_env: lan
"""

README_VULTR = """\
postgres_host: vultr-prod-04b0caa5-03fc-402d-95db-de5fb0bbeb1c-vultr-prod-a539.vultrdb.com
bucket_url: https://sjc1.vultrobjects.com

# --- PostgreSQL
postgres_out: true
postgres_port: 16751
postgres_user: vultradmin
# --- *postgres* or *defaultdb* depend ...
postgres_maintenance_db: defaultdb
postgres_ssl: true
"""

README_DIGITALOCEAN = """\
postgres_host: private-oml-pgsql-do-user-6023066-0.b.db.ondigitalocean.com
bucket_url: https://sfo3.digitaloceanspaces.com

# --- PostgreSQL
postgres_out: true
postgres_port: 25060
postgres_user: doadmin
# --- *postgres* or *defaultdb* depend ...
postgres_maintenance_db: defaultdb
postgres_ssl: true
"""

README_HA_VM_PLAN = """\
VM data RW: 172.16.101.101 (Hypervisor A)
VM data RO: 172.16.101.102 (Hypervisor B)
VM voice main: 172.16.101.103 (Hypervisor B)
VM voice backup: 172.16.101.104 (Hypervisor A)
VM app+redis main: 172.16.101.105 (Hypervisor A)
VM app+redis backup: 172.16.101.106 (Hypervisor B)
VM haproxy main: 172.16.101.107 (Hypervisor B)
VM haproxy backup: 172.16.101.108 (Hypervisor A)

VIP postgres RW: 172.16.101.201
VIP postgres RO: 172.16.101.202
VIP voice_host: 172.16.101.203
VIP haproxy_host: 172.16.101.204
"""

README_HA_VARS = """\
all:
  vars:
    # --- ansible user auth connection
    ansible_user: root

    # -- Cluster Redis IP (Haproxy VIP)
    redis_host: 172.16.101.204
    # --  Cluster redis Main node
    redis_ip_main: 172.16.101.104
    # --  Cluster postgres RW IP
    postgres_host: 172.16.101.201
    # --  Cluster postgres RO IP
    postgres_ro_host: 172.16.101.201
    # --  Cluster Voice (Asterisk + RTPengine) IP
    voice_host: 172.16.101.203
    # -- Cluster HTTP Web App (HAProxy VIP)
    application_host: 172.16.101.204
    # -- Cluster public NAT IP
    omni_ip_wan: 190.19.150.8

    kamailio_version: 230204.01
    asterisk_version: 230328.01
    rtpengine_version: 230204.01
    omnileads_version: 1.26.0
    websockets_version: 230204.01
    nginx_version: 230215.01
    postgres_version: 230204.01
    centos_postgresql_version: 11

    # --- Activate the OMniLeads Enterprise Edition - with "AAAA" licensed.
    # --- on the contrary you will deploy OMniLeads OSS Edition with GPLV3 licensed.
    enterprise_edition: true
    omnileads_ha: true
    ha_notification_email: fabian.pignataro@freetechsolutions.com.ar

    # -- Cluster public NAT IP
    omni_ip_wan: 190.19.150.8
    # --  Cluster redis IP
    # --  Use in case of run RTPEngine out of this deploy
    # rtpengine_host: 172.16.101.203
    # -- Dialer host
    # dialer_host: 10.10.10.10
    # -- Bucket URL for Django & Asterisk
    bucket_url: https://172.16.101.3:9000
    # --- ansible user auth connection
    ansible_user: root
    # --- version of each image to deploy
    # --- "cloud" instance (access through public IP)
    # --- or "lan" instance (access through private IP)
    # --- in order to set NAT or Publica ADDR for RTP voice packages
    infra_env: lan
    # --- If you have an DNS FQDN resolution, you must to uncomment and set this param
    # --- otherwise leave commented to work invoking through an IP address
    #fqdn: fabis.sefirot.cloud
    ...
    ...
    ...
    ...
"""

# ---------------------------------------------------------------------------- what the snippets leave out

# Credentials and settings every layout requires (the README's "rest of the parameters").
SECRETS_AND_REQUIRED: dict[str, Any] = {
    "TZ": "America/Argentina/Cordoba",
    "certs": "selfsigned",
    "postgres_password": "snippet-postgres-pass",
    "ami_password": "snippet-ami-pass",
    "dialer_password": "snippet-dialer-pass",
    "bucket_access_key": "snippet-bucket-key",
    "bucket_secret_key": "snippet-bucket-secret",
}
# The README's AIO hosts block has placeholders: a public SSH address (infra_env is cloud, so the public IP
# for SIP/RTP is the one we reach the host on) and a private LAN address.
AIO_ADDRESSES = {"X.X.X.X": "190.19.150.10", "Z.Z.Z.Z": "10.10.10.2"}
AIO_COMPLETION = {**SECRETS_AND_REQUIRED, "callrec_device": "s3-no-check-cert",
                  "s3_http_admin_pass": "snippet-minio-admin"}
AIT_COMPLETION = {**SECRETS_AND_REQUIRED, "callrec_device": "s3", "s3_http_admin_pass": "snippet-minio-admin",
                  "omnileads_release": "1.27.1"}
# Cloud: the README gives only the provider parameters; hosts are the README's three-host block, reached on
# private addresses, so the public SIP/RTP address must be given.
CLOUD_COMPLETION = {**SECRETS_AND_REQUIRED, "callrec_device": "s3", "omnileads_release": "1.27.1",
                    "infra_env": "cloud", "omni_ip_wan": "190.19.150.8"}
HA_COMPLETION = {**SECRETS_AND_REQUIRED, "callrec_device": "s3-no-check-cert"}
# The HA hosts section, from the README's VM plan and the seed's HA group variables (inventory.md §2.4).
HA_GROUP_VARS: dict[str, dict[str, Any]] = {
    "omnileads_data": {"postgres_host_ha": True, "ha_vip_nic": "eth0", "netaddr": "172.16.101.0/24",
                       "netprefix": 24},
    "omnileads_voice": {"omlvoice": True, "ha_vip_nic": "eth0"},
    "omnileads_app": {"omlapp": True, "ha_vip_nic": "eth0"},
    "omnileads_haproxy": {"omlhaproxy": True, "ha_vip_nic": "eth0", "app_port": 443},
}
HA_PLAN_ROWS = {  # VM plan row -> (group, host, ha_rol)
    "data RW": ("omnileads_data", "sql_1", "main"),
    "data RO": ("omnileads_data", "sql_2", "backup"),
    "voice main": ("omnileads_voice", "voice_1", "main"),
    "voice backup": ("omnileads_voice", "voice_2", "backup"),
    "app+redis main": ("omnileads_app", "app_1", "main"),
    "app+redis backup": ("omnileads_app", "app_2", "backup"),
    "haproxy main": ("omnileads_haproxy", "haproxy_1", "main"),
    "haproxy backup": ("omnileads_haproxy", "haproxy_2", "backup"),
}
# The two mistakes of the shipped HA example, fixed with the README's own VM plan.
HA_FIXES = {
    "postgres_ro_host: 172.16.101.201": "postgres_ro_host: 172.16.101.202",  # "VIP postgres RO"
    "redis_ip_main: 172.16.101.104": "redis_ip_main: 172.16.101.105",  # "VM app+redis main"
}

# ---------------------------------------------------------------------------- assembling inventories


def _vars_lines(values: dict[str, Any], indent: int = 4) -> str:
    return textwrap.indent(dump(values), " " * indent)


def aio_inventory() -> str:
    hosts = README_AIO_HOSTS
    for placeholder, address in AIO_ADDRESSES.items():
        hosts = hosts.replace(placeholder, address)
    # the README indents the keys under `vars:` by four: under `all:` they sit at column 6
    return hosts + textwrap.indent(README_AIO_VARS, "  ") + _vars_lines(AIO_COMPLETION, 6)


def ait_inventory(completion: dict[str, Any] = AIT_COMPLETION, provider: str = "") -> str:
    return ("---\n" + README_AIT_HOSTS + "  vars:\n" + textwrap.indent(README_AIT_INFRA_ENV, "    ")
            + textwrap.indent(provider, "    ") + _vars_lines(completion))


def cloud_inventory(provider: str) -> str:
    completion = {k: v for k, v in CLOUD_COMPLETION.items() if k != "infra_env"}
    return ait_inventory(completion, provider).replace("    infra_env: lan\n",
                                                       f"    infra_env: {CLOUD_COMPLETION['infra_env']}\n")


def ha_plan() -> dict[str, str]:
    """VM plan row label -> address, parsed from the README text."""
    return dict(re.findall(r"^(?:VM|VIP) ([^:]+): (\d+\.\d+\.\d+\.\d+)", README_HA_VM_PLAN, re.M))


def ha_inventory(fixed: bool) -> str:
    body = "\n".join(line for line in README_HA_VARS.splitlines() if line.strip() != "...") + "\n"
    if fixed:
        for old, new in HA_FIXES.items():
            assert old in body
            body = body.replace(old, new)
    plan = ha_plan()
    children: dict[str, Any] = {g: {"hosts": {}, "vars": dict(v)} for g, v in HA_GROUP_VARS.items()}
    for row, (group, host, role) in HA_PLAN_ROWS.items():
        children[group]["hosts"][host] = {"ansible_host": plan[row], "omni_ip_lan": plan[row], "ha_rol": role}
    return (body + _vars_lines(HA_COMPLETION)
            + "  children:\n" + textwrap.indent(dump(children), "    "))


# ---------------------------------------------------------------------------- helpers


def _load_ok(td: TenantDir) -> Tenant:
    tenant = td.load()
    result = td.validate()
    assert result.code == 0, result.err
    assert f"{td.inventory}: valid" in result.out
    assert "Traceback" not in result.err
    return tenant


def _units(bundle: Bundle) -> dict[str, set[str]]:
    return {h.host: {u.name for u in h.units} for h in bundle.hosts}


def _env(bundle: Bundle, host: str, name: str) -> dict[str, str]:
    content = bundle.host(host).file(f"/etc/default/{name}.env").content.decode()
    return dict(line.split("=", 1) for line in content.splitlines() if "=" in line and not line.startswith("#"))


def _all_units(bundle: Bundle) -> set[str]:
    return set().union(*_units(bundle).values())


# ---------------------------------------------------------------------------- tests


def test_snippets_are_yaml_as_printed() -> None:
    """The README blocks parse on their own (the HA one only without its '...' elision lines)."""
    import yaml

    for snippet in (README_AIO_HOSTS, README_AIO_VARS, README_AIT_HOSTS, README_AIT_INFRA_ENV, README_VULTR,
                    README_DIGITALOCEAN):
        assert isinstance(yaml.safe_load(snippet), dict)
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(README_HA_VARS)
    assert len(ha_plan()) == 12


def test_aio_snippet(tenant_dir: Any) -> None:
    td = tenant_dir(aio_inventory(), name="aio")
    tenant = _load_ok(td)
    assert tenant.layout.shape is Shape.AIO
    assert tenant.settings["enterprise_edition"] is True
    assert tenant.versions["omnileads_version"] == "1.26.0"
    assert tenant.versions["asterisk_version"] == "230204.01"
    host = tenant.host("omnileads_aio")
    assert (host.address, host.lan_ip, host.port) == ("190.19.150.10", "10.10.10.2", 22)
    bundle = render_tenant(tenant)
    units = _units(bundle)["omnileads_aio"]
    assert {"postgresql", "redis", "minio", "asterisk", "nginx", "kamailio", "omnileads"} <= units
    images = bundle.host("omnileads_aio").images
    assert any(i.endswith("/asterisk:230204.01") for i in images), images
    assert any("omlapp:1.26.0" in i for i in images), images
    assert (td.folder / ".omldeploy").is_dir()  # generated material stays in the (temporary) tenant folder


def test_aio_snippet_with_placeholders_is_rejected(tenant_dir: Any) -> None:
    """As printed, X.X.X.X / Z.Z.Z.Z are not addresses: the placeholders must be replaced."""
    text_ = README_AIO_HOSTS + textwrap.indent(README_AIO_VARS, "  ") + _vars_lines(AIO_COMPLETION, 6)
    errs = errors(tenant_dir(text_).problems())
    assert {p.key for p in errs} == {"omnileads_aio.omni_ip_lan", "omni_ip_wan"}
    assert any(p.key == "omnileads_aio.omni_ip_lan" and "is not an IPv4 address" in p.message for p in errs)
    assert any(p.key == "omni_ip_wan" and "(X.X.X.X) is not a public address" in p.message for p in errs)


def test_ait_snippet(tenant_dir: Any) -> None:
    tenant = _load_ok(tenant_dir(ait_inventory(), name="ait"))
    assert tenant.layout.shape is Shape.AIT
    assert not tenant.layout.external_db and not tenant.layout.external_bucket
    assert {h.name: h.lan_ip for h in tenant.hosts} == {
        "omnileads_data": "10.10.10.2", "omnileads_voice": "10.10.10.3", "omnileads_app": "10.10.10.4"}
    units = _units(render_tenant(tenant))
    assert {"postgresql", "redis", "minio"} <= units["omnileads_data"]
    assert {"asterisk", "rtpengine"} <= units["omnileads_voice"]
    assert {"nginx", "kamailio", "omnileads"} <= units["omnileads_app"]
    assert "postgresql" not in units["omnileads_app"] | units["omnileads_voice"]


@pytest.mark.parametrize(
    ("provider", "snippet", "port", "user"),
    [("vultr", README_VULTR, "16751", "vultradmin"), ("digitalocean", README_DIGITALOCEAN, "25060", "doadmin")],
)
def test_cloud_snippets(tenant_dir: Any, provider: str, snippet: str, port: str, user: str) -> None:
    tenant = _load_ok(tenant_dir(cloud_inventory(snippet), name=provider))
    assert tenant.layout.name == "cloud-ait"
    assert tenant.settings["postgres_port"] == int(port)
    assert tenant.settings["postgres_maintenance_db"] == "defaultdb"
    bundle = render_tenant(tenant)
    every = _all_units(bundle)
    assert "postgresql" not in every
    assert "minio" not in every
    assert "prometheus_postgres" not in every
    assert {"asterisk", "nginx", "redis"} <= every
    django = _env(bundle, "omnileads_app", "django")
    assert django["PGPORT"] == port
    assert django["PGUSER"] == user
    assert django["PGSSLMODE"] == "require"
    assert django["PGHOST"] == tenant.settings["postgres_host"]
    assert django["S3_ENDPOINT"] == tenant.settings["bucket_url"]


def test_ha_snippet_as_shipped_is_rejected_for_exactly_its_two_mistakes(tenant_dir: Any) -> None:
    td = tenant_dir(ha_inventory(fixed=False), name="ha")
    problems = td.problems()
    errs = errors(problems)
    assert {p.key for p in errs} == {"postgres_ro_host", "redis_ip_main"}, describe(problems)
    (ro,) = [p for p in errs if p.key == "postgres_ro_host"]
    assert "equals postgres_host" in ro.message
    (redis,) = [p for p in errs if p.key == "redis_ip_main"]
    assert "must be the LAN address of an app node" in redis.message
    assert "voice_2's address" in redis.message
    assert redis.allowed == "172.16.101.105, 172.16.101.106"
    result = td.validate()
    assert result.code == 2
    assert "postgres_ro_host" in result.err and "redis_ip_main" in result.err


def test_ha_snippet_fixed_from_the_vm_plan(tenant_dir: Any) -> None:
    td = tenant_dir(ha_inventory(fixed=True), name="ha")
    tenant = _load_ok(td)
    assert tenant.layout.shape is Shape.HA
    assert tenant.settings["postgres_ro_host"] == ha_plan()["postgres RO"]
    assert tenant.settings["redis_ip_main"] == ha_plan()["app+redis main"]
    shown = "\n".join(tenant.warnings)
    # the README writes omni_ip_wan and ansible_user twice (same values) and an unused CentOS knob
    assert "all.vars.omni_ip_wan: written twice with the same value" in shown
    assert "all.vars.ansible_user: written twice with the same value" in shown
    assert "centos_postgresql_version: has no effect" in shown
    bundle = render_tenant(tenant)
    units = _units(bundle)
    assert set(units) == {"sql_1", "sql_2", "voice_1", "voice_2", "app_1", "app_2", "haproxy_1", "haproxy_2"}
    assert all(units.values()), units
    assert "minio" not in _all_units(bundle)
    for sql in ("sql_1", "sql_2"):
        assert {"postgresql", "keepalived"} <= units[sql]
    for voice in ("voice_1", "voice_2"):
        assert {"asterisk", "rtpengine", "keepalived"} <= units[voice]
    for app in ("app_1", "app_2"):
        assert {"redis", "nginx", "omnileads"} <= units[app]
        assert "postgresql" not in units[app]
    for proxy in ("haproxy_1", "haproxy_2"):
        assert {"haproxy", "keepalived"} <= units[proxy]


def test_completions_only_add_keys_the_snippets_lack() -> None:
    """The completion dicts never override a value that a README snippet sets."""
    import yaml

    aio_keys = set(yaml.safe_load(README_AIO_VARS)["vars"])
    ha_body = "\n".join(line for line in README_HA_VARS.splitlines() if line.strip() != "...")
    ha_keys = set(yaml.safe_load(ha_body)["all"]["vars"])
    provider_keys = set(yaml.safe_load(README_VULTR)) | set(yaml.safe_load(README_DIGITALOCEAN))
    assert not aio_keys & set(AIO_COMPLETION)
    assert not ha_keys & set(HA_COMPLETION)
    assert not provider_keys & set(CLOUD_COMPLETION)
    assert "infra_env" not in AIT_COMPLETION  # the README gives `infra_env: lan` for AIT
