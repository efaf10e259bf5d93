"""`omldeploy tenant destroy`: decommission a customer, keeping what must outlive it.

Without `--yes` it only reads: every host says (check mode) which units, containers, volumes, files,
folders, images and firewall table of the tenant it holds, and the plan is printed. With `--yes`, under
the tenant lock:
  1. a final backup, verified (unless `--no-backup`); a failure stops here, nothing removed;
     the inventory's retention then applies (`backup_keep`, `backup_keep_days`), unless `--keep-backups`;
  2. every host removes the tenant's units, containers, volumes, files, folders, firewall table and the
     images nobody else uses, then releases its owner marker (one SSH round trip, hosts in parallel);
  3. the tenant folder (inventory, certificates, generated secrets, ledger, logs) is archived as a 0600
     tar.gz under `instances/.archive/`, and only then removed; the destroy is recorded both in the
     tenant's ledger (inside the archive) and in `instances/.archive/.omldeploy/ledger.jsonl`.

A tenant whose bucket is its own MinIO keeps its backups in the `oml_minio` volume of that host: the
volume is kept (and said so) unless `--purge-bucket`, which then takes no final backup (it would go with
the volume).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from omldeploy.apply.engine import RunResult, Step, run_steps, unit_args
from omldeploy.inventory.model import Tenant
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.render.build import render_tenant
from omldeploy.render.bundle import Bundle, HostBundle
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
BUCKET_VOLUME = "oml_minio"
ARCHIVE_DIR = ".archive"


def own_bucket_host(bundle: Bundle) -> str | None:
    """The host whose MinIO holds the tenant's bucket (AIO, AIT), or None (cloud, HA: an external bucket)."""
    return next((hb.host for hb in bundle.hosts if any(u.name == "minio" for u in hb.units)), None)


def destroy_args(tenant: Tenant, hb: HostBundle, keep_volumes: set[str]) -> dict[str, Any]:
    return {
        "tenant": tenant.name,
        "phase": "destroy",
        "units": unit_args(hb),
        "host_units": list(hb.host_units),
        "files_index": sorted(f.path for f in hb.files),
        "directories": [{"path": p, "mode": f"{m:04o}"} for p, m in hb.directories],
        "volumes": [v for v in hb.volumes if v not in keep_volumes],
        "images": sorted({u.image for u in hb.units} | {i for u in hb.units for i in u.hook_images}),
    }


def destroy(tenant: Tenant, reporter: Reporter, *, yes: bool, keep_backups: bool, final_backup: bool,
            purge_bucket: bool) -> int:
    say = reporter.line
    reporter.redact = redactor(tenant)
    bundle = render_tenant(tenant)
    bucket_host = own_bucket_host(bundle)
    if purge_bucket and bucket_host is None:
        say(f"--purge-bucket: tenant {tenant.name} has no bucket of its own (it uses an external one, which "
            "omldeploy never deletes); nothing was done")
        return EXIT_INPUT
    if purge_bucket and keep_backups:
        say("--purge-bucket deletes the bucket with its backups; it cannot be combined with --keep-backups; "
            "nothing was done")
        return EXIT_INPUT
    keep = {BUCKET_VOLUME} if bucket_host and not purge_bucket else set()
    take_backup = final_backup and not purge_bucket
    steps = [Step("destroy", "omldeploy_host", {hb.host: destroy_args(tenant, hb, keep) for hb in bundle.hosts})]
    archive = archive_path(tenant)
    if not yes:
        return _plan(tenant, steps, archive, take_backup=take_backup, keep_backups=keep_backups,
                     bucket_host=bucket_host if keep else None, purge=purge_bucket and bucket_host is not None,
                     reporter=reporter)
    started, t0 = ledger.now(), time.time()
    with tenant_lock(tenant.folder, tenant.name, "destroy"):
        extra: dict[str, Any] = {"final_backup": None, "kept_volume": None, "archive": str(archive)}
        if take_backup:
            from omldeploy.ops.backup import run_backup  # the backup machinery, only when it is used

            code, bid = run_backup(tenant, reporter, verify=True, retention=not keep_backups)
            if code != EXIT_OK or bid is None:
                say(f"FAILED: the final backup did not succeed: tenant {tenant.name} was NOT destroyed (nothing "
                    "was removed). Fix the backup, or destroy with --no-backup")
                _record(tenant, "failed", started, t0, extra, "final backup failed")
                return code or EXIT_FAILED
            extra["final_backup"] = bid
            say(f"final backup {bid} verified" + ("; every backup kept (--keep-backups)" if keep_backups else
                                                  "; the inventory's retention applied"))
        elif not final_backup:
            say("no final backup (--no-backup)")
        result = run_steps(tenant, steps)
        failed = [h for h in result.hosts.values() if h.error or h.unreachable]
        for name, h in result.hosts.items():
            if h.error or h.unreachable:
                say(f"  {name}: FAILED: {h.error}")
            else:
                say(f"  {name}: {_summary(h.reports.get('destroy') or {})}")
        if failed:
            say(f"FAILED: tenant {tenant.name} is only partly removed: run the same destroy again to finish "
                "(the hosts still name this tenant as their owner until they are clean)")
            _record(tenant, "failed", started, t0, extra, "; ".join(str(h.error) for h in failed)[:500])
            return EXIT_FAILED
        if keep:
            extra["kept_volume"] = f"{bucket_host}:{BUCKET_VOLUME}"
            say(f"  kept: volume {BUCKET_VOLUME} on {bucket_host}: the tenant's bucket, with its backups"
                + (f" (the final one: {extra['final_backup']})" if extra["final_backup"] else "")
                + ". Remove it later with `podman volume rm oml_minio` on that host")
        _record(tenant, "ok", started, t0, extra, "")
        made = _archive(tenant, archive)
        say(f"tenant folder archived to {made} (0600) and removed from {tenant.folder.parent}")
        say(f"tenant {tenant.name} destroyed")
        return EXIT_OK


def archive_path(tenant: Tenant) -> Path:
    return tenant.folder.parent / ARCHIVE_DIR / f"{tenant.name}-{time.strftime('%Y%m%dT%H%M%S')}.tar.gz"


def _plan(tenant: Tenant, steps: list[Step], archive: Path, *, take_backup: bool, keep_backups: bool,
          bucket_host: str | None, purge: bool, reporter: Reporter) -> int:
    say = reporter.line
    result = run_steps(tenant, steps, check=True)
    say(f"plan: destroy tenant {tenant.name} ({tenant.layout.describe()}); nothing is done without --yes")
    say("  1. " + ("a final backup, verified; then " + ("every backup is kept" if keep_backups else
                                                      "the inventory's retention applies")
                   if take_backup else "no final backup" + (" (the bucket goes with the host)" if purge else "")))
    say("  2. on every host (one round trip, in parallel):")
    bad = _host_lines(result, say)
    if bucket_host:
        say(f"     kept: volume {BUCKET_VOLUME} on {bucket_host} (the tenant's bucket and its backups; "
            "--purge-bucket removes it too)")
    say(f"  3. the tenant folder archived to {archive}, then removed")
    say(f"run again with --yes to destroy tenant {tenant.name}")
    return EXIT_FAILED if bad else EXIT_OK


def _host_lines(result: RunResult, say: Any) -> bool:
    bad = False
    for name, h in result.hosts.items():
        if h.error or h.unreachable:
            say(f"     {name}: cannot be read: {h.error}")
            bad = True
            continue
        rep = h.reports.get("destroy") or {}
        say(f"     {name}: {_summary(rep, planned=True)}")
    return bad


def _summary(rep: dict[str, Any], planned: bool = False) -> str:
    if not rep.get("changed"):
        return "nothing of this tenant here"
    verb = "would remove" if planned else "removed"
    parts = [f"{len(rep.get(k) or [])} {label}" for k, label in
             (("units", "unit(s)"), ("containers", "container(s)"), ("volumes", "volume(s)"),
              ("files", "file(s)"), ("directories", "folder(s)"), ("images", "image(s)")) if rep.get(k)]
    if rep.get("firewall"):
        parts.append("the firewall table")
    if rep.get("owner_marker"):
        parts.append("the owner marker")
    vols = f" [volumes: {', '.join(rep['volumes'])}]" if rep.get("volumes") else ""
    return f"{verb} " + ", ".join(parts) + vols


def _record(tenant: Tenant, outcome: str, started: str, t0: float, extra: dict[str, Any], detail: str) -> None:
    rec = ledger.Record(action="destroy", outcome=outcome, started=started, duration=round(time.time() - t0, 1),
                        versions=dict(tenant.versions), hosts=[h.name for h in tenant.hosts], detail=detail,
                        extra={**extra, "tenant": tenant.name})
    red = redactor(tenant)
    ledger.append(tenant.folder, rec, redact=red)
    if outcome == "ok":
        ledger.append(tenant.folder.parent / ARCHIVE_DIR, rec, redact=red)


def _archive(tenant: Tenant, target: Path) -> Path:
    """The whole tenant folder as a 0600 tar.gz in a 0700 folder, written under a temporary name and
    renamed, then the folder removed: an interrupted archive never replaces the folder."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    tmp = target.with_name(target.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add(tenant.folder, arcname=tenant.name)
    os.replace(tmp, target)
    shutil.rmtree(tenant.folder)
    return target
