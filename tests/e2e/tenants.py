"""Tenants for e2e tests: the bundled example inventories pointed at sandbox hosts.

Only what an operator would change is changed: host addresses, SSH connection variables, the image
registry (the sandbox's local registry), passwords (fresh random ones) and, for cloud, the managed
PostgreSQL host and the bucket.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import yaml

from omldeploy.catalog.releases import images
from omldeploy.inventory import Tenant, load_tenant
from omldeploy.inventory.schema import VERSION_KEYS
from omldeploy.sandbox import Host, Sandbox

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "omldeploy" / "examples"
PASSWORD_KEYS = ("postgres_password", "s3_http_admin_pass", "bucket_access_key", "bucket_secret_key",
                 "ami_password", "dialer_password")


def write_tenant(instances: Path, name: str, layout: str, sandbox: Sandbox, hosts: list[Host],
                 extra: dict[str, Any] | None = None, host_extra: dict[str, dict[str, Any]] | None = None) -> Tenant:
    data = yaml.safe_load((EXAMPLES / f"inventory_{layout}.yml").read_text())
    # AIO/AIT list hosts under all.hosts; HA under its groups (all.children.<group>.hosts), in file order
    inv_hosts = data["all"].get("hosts") or {
        name: hv for group in data["all"]["children"].values() for name, hv in group["hosts"].items()}
    for (_, hvars), h in zip(inv_hosts.items(), hosts, strict=True):
        hvars["ansible_host"] = h.ip
        hvars["omni_ip_lan"] = h.ip
    for hname, hv in (host_extra or {}).items():
        inv_hosts[hname].update(hv)
    v = data["all"]["vars"]
    for key in PASSWORD_KEYS:
        if key in v:
            v[key] = "e2e-" + secrets.token_hex(10)
    for key in ("data_host", "voice_host", "application_host"):
        v.pop(key, None)
    v.update(sandbox.ansible_connection_vars())
    v["container_image_registry"] = sandbox.registry
    v["TZ"] = "America/Argentina/Cordoba"
    v["infra_env"] = "lan"
    v.pop("omni_ip_wan", None)
    v.update(extra or {})
    folder = instances / name
    folder.mkdir(parents=True, exist_ok=True)
    inv = folder / "inventory.yml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    inv.chmod(0o600)
    return load_tenant(folder, name)


def passwords(tenant: Tenant) -> list[str]:
    return [tenant.settings.text(k) for k in PASSWORD_KEYS if tenant.settings.has(k)]


def tags(which: str) -> dict[str, str]:
    """The version keys at the sandbox's `A` (default) or `B` (alt) tags."""
    out = {}
    for ref in images().values():
        if ref.tag_key in VERSION_KEYS:
            out[ref.tag_key] = ref.default if which == "A" else ref.alt
    return out


def set_versions(tenant: Tenant, versions: dict[str, str]) -> None:
    """Edit the `*_version:` lines as an operator would (an absent key is added under `vars:`)."""
    inv = tenant.inventory_path
    text = inv.read_text()
    for key, tag in versions.items():
        new = re.sub(rf"^(\s+){key}:.*$", rf"\g<1>{key}: '{tag}'", text, flags=re.M)
        if new == text and not re.search(rf"^\s+{key}:", text, re.M):
            new = re.sub(r"^(\s*)vars:\s*$", rf"\g<0>\n\g<1>  {key}: '{tag}'", text, count=1, flags=re.M)
        text = new
    inv.write_text(text)
