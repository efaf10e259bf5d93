"""Scheduled backups (`backup_schedule` in the inventory): a systemd timer on the host that dumps the
database (the same host `omldeploy backup` dumps from), running `backup/agent.py` with the host module.

Rendered like every other artifact: the timer and service units, the agent's configuration (0600: it
holds the bucket keys) and the few pure modules the agent needs, under a per-tenant directory. The
Asterisk custom files are part of a scheduled backup when they live on that same host (AIO); in AIT and
HA they are on the voice host, which the database host cannot read, and the manifest says so (an
`omldeploy backup` from the controller includes them).
"""

from __future__ import annotations

import json
from importlib import resources

from omldeploy.inventory.model import Tenant
from omldeploy.render.backup_target import CUSTOM_DIR, TargetError, resolve
from omldeploy.render.bundle import Bundle, BundleFile

LIB_ROOT = "/usr/local/lib/omldeploy-backup"
CONFIG_DIR = "/etc/omldeploy/backup"
# the agent and the pure modules it imports (standard library only), as package-relative paths
SHIPPED = ("__init__.py", "backup/__init__.py", "backup/agent.py", "backup/layout.py", "backup/manifest.py",
           "backup/catalog.py", "backup/retention.py")


class ScheduleError(Exception):
    pass


def unit_name(tenant: str) -> str:
    return f"omldeploy-backup-{tenant}"


def add_schedule(tenant: Tenant, bundle: Bundle) -> None:
    spec = tenant.settings.opt("backup_schedule")
    if not spec:
        return
    try:
        target = resolve(tenant, bundle)
    except TargetError as exc:
        raise ScheduleError(f"backup_schedule: {exc}") from None
    hb = bundle.host(target.db_host)
    s = tenant.settings
    with_files = target.files_host == target.db_host
    lib = f"{LIB_ROOT}/{tenant.name}"
    config_path = f"{CONFIG_DIR}/{tenant.name}.json"
    config = {
        "tenant": tenant.name, "host": target.db_host, "schedule": spec, "layout": tenant.layout.name,
        "s3": target.s3, "db": target.db, "format": "custom",
        "compress": tenant.settings.num("backup_compression"), "files": with_files,
        "files_elsewhere": None if with_files or not target.files_host else target.files_host,
        "keep": s.num("backup_keep") if s.has("backup_keep") else None,
        "keep_days": float(s.num("backup_keep_days")) if s.has("backup_keep_days") else None,
        "versions": dict(tenant.versions), "images": target.images,
    }
    hb.add(BundleFile(config_path, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode(), 0o600,
                      secret=True, kind="config"))
    package = resources.files("omldeploy")
    for rel in SHIPPED:
        hb.add(BundleFile(f"{lib}/omldeploy/{rel}", package.joinpath(rel).read_bytes(), 0o644, kind="script"))
    host_module = package.joinpath("apply/ansible/library/omldeploy_backup.py").read_bytes()
    hb.add(BundleFile(f"{lib}/omldeploy_backup.py", host_module, 0o644, kind="script"))
    s3_client = package.joinpath("apply/ansible/module_utils/omldeploy_s3.py").read_bytes()
    hb.add(BundleFile(f"{lib}/omldeploy_s3.py", s3_client, 0o644, kind="script"))  # imported by the module
    safefs = package.joinpath("apply/ansible/module_utils/omldeploy_safefs.py").read_bytes()
    hb.add(BundleFile(f"{lib}/omldeploy_safefs.py", safefs, 0o644, kind="script"))  # imported by the module too
    name = unit_name(tenant.name)
    files_note = f"with {CUSTOM_DIR}" if with_files else "database only"
    service = f"""\
[Unit]
Description=omldeploy scheduled backup of tenant {tenant.name} ({files_note})
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
Environment=PYTHONPATH={lib} PYTHONDONTWRITEBYTECODE=1
ExecStart=/usr/bin/python3 -m omldeploy.backup.agent {config_path}
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
TimeoutStartSec=6h
"""
    timer = f"""\
[Unit]
Description=omldeploy scheduled backup of tenant {tenant.name}: {spec}

[Timer]
OnCalendar={spec}
Persistent=true

[Install]
WantedBy=timers.target
"""
    hb.add(BundleFile(f"/etc/systemd/system/{name}.service", service.encode(), 0o644, kind="hostunit"))
    hb.add(BundleFile(f"/etc/systemd/system/{name}.timer", timer.encode(), 0o644, kind="hostunit"))
    if f"{name}.timer" not in hb.host_units:
        hb.host_units.append(f"{name}.timer")
