"""Upstream HEAD's two-node HA installed on 2 sandbox hosts: h1 (Debian 12, `ha_role: main`) and h2
(Debian 13, `ha_role: backup`), from the bundled example in HEAD's inventory shape (`ha_instances`
group vars, `omnileads_aio`, `ha_role`, `omnileads_vip`, `postgres_rw_vip`, `postgres_ro_vip`).

VIPs as in tests/e2e/ha (so its probe loops apply): .201 PostgreSQL RW, .202 RO, .204 the web and
voice VIP (`omnileads_vip`). The sandbox's S3 store (on the host bridge) is the external bucket and the
witness both nodes reach (`ha_witness`). OMLDEPLOY_E2E_HA_OSES (comma list of 2) overrides the systems.
"""

from __future__ import annotations

import os
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ha.common import cli, vips
from sandboxes import operator_bucket, own_sandbox
from tenants import EXAMPLES, PASSWORD_KEYS

from omldeploy.inventory import Tenant, load_tenant
from omldeploy.sandbox import Sandbox

NAME = os.environ.get("OMLDEPLOY_E2E_NAME", "e2e") + "-ha2"
TENANT = "two"
MAIN, BACKUP = "h1", "h2"


@pytest.fixture(scope="package")
def pair_sandbox() -> Iterator[Sandbox]:
    wanted = os.environ.get("OMLDEPLOY_E2E_HA_OSES", "")
    oses = tuple(x.strip() for x in wanted.split(",") if x.strip())[:2] or ("debian12", "debian13")
    with own_sandbox(NAME, oses) as sb:
        yield sb


@pytest.fixture(scope="package")
def pair_instances(pair_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("OMLDEPLOY_E2E_KEEP") == "1":
        return pair_sandbox.state_dir / "e2e-instances"
    return tmp_path_factory.mktemp("e2e-ha2") / "instances"


def head_inventory(sb: Sandbox) -> str:
    """The bundled HEAD-shaped example, changed only where an operator would: addresses, NIC, VIPs,
    bucket, witness, passwords, registry and SSH connection variables."""
    data = yaml.safe_load((EXAMPLES / "inventory_ha_aio.yml").read_text())
    group = data["all"]["children"]["ha_instances"]["children"]["tenant_example_7"]
    names = list(group["hosts"])
    for name, h in zip(names, (MAIN, BACKUP), strict=True):
        group["hosts"][name]["ansible_host"] = sb.host(h).ip
        group["hosts"][name]["omni_ip_lan"] = sb.host(h).ip
    v = vips(sb)
    nic = sb.run(MAIN, "ip -o -4 addr show | awk '$4 ~ /^10\\./ {print $2}'").stdout.split()[0]
    endpoint = urllib.parse.urlsplit(sb.s3.endpoint)
    g = group["vars"]
    g.update({
        "netaddr": sb.host(MAIN).ip.rsplit(".", 1)[0] + ".0/24", "ha_vip_nic": nic,
        "aio_1": sb.host(MAIN).ip, "aio_2": sb.host(BACKUP).ip,
        "omnileads_vip": v["web"], "postgres_rw_vip": v["rw"], "postgres_ro_vip": v["ro"],
        "ha_witness": f"{endpoint.hostname}:{endpoint.port}",
        "bucket_url": sb.s3.endpoint, "bucket_access_key": sb.s3.access_key,
        "bucket_secret_key": sb.s3.secret_key, "bucket_name": "omnileads-ha2",
    })
    a = data["all"]["vars"]
    for key in PASSWORD_KEYS:
        if key in a and key not in g:
            a[key] = "e2e-" + secrets.token_hex(10)
    a.update(sb.ansible_connection_vars())
    a["container_image_registry"] = sb.registry
    a["callrec_device"] = "s3"
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(scope="package")
def pair(pair_sandbox: Sandbox, pair_instances: Path) -> Iterator[tuple[Tenant, float, str]]:
    """HEAD's two-node HA installed: (tenant, install seconds, install output)."""
    sb = pair_sandbox
    folder = pair_instances / TENANT
    operator_bucket(sb, "omnileads-ha2")
    if not (folder / "inventory.yml").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "inventory.yml").write_text(head_inventory(sb))
        (folder / "inventory.yml").chmod(0o600)
    tenant = load_tenant(folder, TENANT)
    t0 = time.monotonic()
    proc = cli(pair_instances, "install", "--tenant", TENANT)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    yield tenant, took, out
