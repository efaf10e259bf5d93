"""One HA install shared by every module of this folder (they run in file order: steady state first,
then the failures, each leaving a cluster the next one can use).

Dedicated sandbox `<OMLDEPLOY_E2E_NAME>-ha` (8 hosts, registry, S3 as the external bucket), up for this
folder only (package scope). Each pair has one Debian 12 host (classic units, Podman 4.3) and one Debian 13
host (Quadlet, Podman 5.4): h1 h3 h5 h7 (the `main` side) run 12, h2 h4 h6 h8 run 13, so every failover
crosses systems. OMLDEPLOY_E2E_HA_OSES (comma list of 8) overrides. VRRP is multicast by default;
OMLDEPLOY_E2E_HA_UNICAST=1 runs the same tests with `ha_vrrp_unicast: true`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sandboxes import operator_bucket, own_sandbox  # tests/e2e is on sys.path (rootdir-relative)
from tenants import write_tenant

from omldeploy.inventory import Tenant, load_tenant
from omldeploy.sandbox import Sandbox

from .common import NAME, cli, vips


@pytest.fixture(scope="package")
def ha_sandbox() -> Iterator[Sandbox]:
    wanted = os.environ.get("OMLDEPLOY_E2E_HA_OSES", "")
    oses = tuple(x.strip() for x in wanted.split(",") if x.strip()) or ("debian12", "debian13") * 4
    with own_sandbox(NAME, oses) as sb:
        yield sb


KEEP = os.environ.get("OMLDEPLOY_E2E_KEEP") == "1"


@pytest.fixture(scope="package")
def instances(ha_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """With OMLDEPLOY_E2E_KEEP=1 the tenant lives beside the kept sandbox and is reused by the next
    session: a new tenant would bring new secrets, and re-installing those on a running cluster is not
    what a developer iterating on one module wants (repmgr keeps the old password)."""
    if KEEP:
        return ha_sandbox.state_dir / "e2e-instances"
    return tmp_path_factory.mktemp("e2e-ha") / "instances"


@pytest.fixture(scope="package")
def ha(ha_sandbox: Sandbox, instances: Path) -> Iterator[tuple[Tenant, float, str]]:
    """The seed's HA inventory installed: (tenant, install seconds, install output)."""
    sb = ha_sandbox
    v = vips(sb)
    nic = sb.run("h1", "ip -o -4 addr show | awk '$4 ~ /^10\\./ {print $2}'").stdout.split()[0]
    operator_bucket(sb, "omnileads-ha")
    hosts = [sb.host(f"h{i}") for i in range(1, 9)]
    if KEEP and (instances / "ha" / "inventory.yml").exists():
        tenant = load_tenant(instances / "ha", "ha")
        proc = cli(instances, "install", "--tenant", "ha")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
        yield tenant, 0.0, proc.stdout + proc.stderr
        return
    tenant = write_tenant(instances, "ha", "ha", sb, hosts, extra={
        "postgres_host": v["rw"], "postgres_ro_host": v["ro"], "voice_host": v["voice"],
        "application_host": v["web"], "redis_host": v["web"], "redis_ip_main": sb.host("h5").ip,
        "bucket_url": sb.s3.endpoint, "bucket_access_key": sb.s3.access_key,
        "bucket_secret_key": sb.s3.secret_key, "bucket_name": "omnileads-ha", "callrec_device": "s3",
        "enterprise_edition": True,  # as the seed's HA inventory has it
        **({"ha_vrrp_unicast": True} if os.environ.get("OMLDEPLOY_E2E_HA_UNICAST") == "1" else {}),
    })
    # the operator's network: group vars name the VIP interface and the pg_hba subnet
    inv = tenant.inventory_path
    data = yaml.safe_load(inv.read_text())
    for group in data["all"]["children"].values():
        group["vars"]["ha_vip_nic"] = nic
        if "netaddr" in group["vars"]:
            group["vars"]["netaddr"] = sb.host("h1").ip.rsplit(".", 1)[0] + ".0/24"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    tenant = load_tenant(tenant.folder, "ha")
    t0 = time.monotonic()
    proc = cli(instances, "install", "--tenant", "ha")
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    yield tenant, took, out
