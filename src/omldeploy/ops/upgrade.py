"""upgrade and rollback: new image versions behind health gates, with an automatic way back.

upgrade: versions from the inventory (or `--release X` from the catalog) → every new image pulled on
its hosts before anything changes (a missing tag fails with nothing changed) → pre-upgrade backup
(unless `--no-backup`) → components restarted in dependency order, only those whose image or files
changed, each gated by its health check → on a failed gate the previously deployed versions (from the
ledger) are put back and verified, and the command exits non-zero with a report.

rollback: the versions of an earlier successful run from the ledger (default: the one before the
current), optionally with the data (`--with-data` restores the backup taken before that upgrade).
Both keep the inventory in step (the `*_version` lines are rewritten) so a later `install` does not
undo them silently.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import yaml

from omldeploy.apply.engine import RunResult
from omldeploy.catalog.releases import find_release, releases
from omldeploy.inventory import Tenant
from omldeploy.inventory.rewrite import RewriteError, set_tenant_keys
from omldeploy.inventory.schema import OPTIONAL_VERSION_KEYS, VERSION_KEYS
from omldeploy.ops.converge import Reporter, converge, converge_result
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock

# Tag keys a release names. The optional ones (and the cron's own tag) place their component only when
# present, so a version set without them means "without that component", not "keep what runs now".
OPTIONAL_KEYS = (*OPTIONAL_VERSION_KEYS, "omlcron_version")
RELEASE_KEYS = (*VERSION_KEYS, "redis_version", *OPTIONAL_KEYS)


class UpgradeError(Exception):
    """Bad request (unknown release, nothing to roll back to): exit 2, nothing done."""


def _deployed(folder: Path) -> list[ledger.Record]:
    """Successful converging runs, oldest first."""
    return [r for r in ledger.read(folder)
            if r.outcome == "ok" and r.action in ("install", "upgrade", "rollback")]


def history(folder: Path) -> list[tuple[int, ledger.Record]]:
    """Numbered distinct version sets that were deployed successfully (1 = most recent)."""
    out: list[tuple[int, ledger.Record]] = []
    last: dict[str, str] | None = None
    for rec in reversed(_deployed(folder)):
        if rec.versions != last:
            out.append((len(out) + 1, rec))
            last = rec.versions
    return out


def last_run_failed(folder: Path) -> bool:
    """Whether the most recent converging run (install, upgrade, rollback) ended in failure."""
    runs = [r for r in ledger.read(folder) if r.action in ("install", "upgrade", "rollback") and r.outcome != "check"]
    return bool(runs) and runs[-1].outcome != "ok"


def pin_versions(tenant: Tenant, versions: dict[str, str]) -> list[str]:
    """Rewrite the inventory's `*_version:` keys (comments and layout kept; inventory/rewrite.py);
    returns the changed keys. The previous text stays in `<inventory>.bak`, mode 0600."""
    wanted: dict[str, str | None] = {}
    for key in RELEASE_KEYS:
        want = versions.get(key)
        if want is None and key not in OPTIONAL_KEYS:
            continue  # a key the version set does not name is left as written
        wanted[key] = want  # None: the version set goes without that optional component
    # e.g. redis_version: the catalog default stands unless the inventory names one
    addable = frozenset(k for k in RELEASE_KEYS if k in VERSION_KEYS or k in OPTIONAL_KEYS)
    try:
        return set_tenant_keys(tenant.inventory_path, wanted, add=addable)
    except (RewriteError, yaml.YAMLError) as exc:
        raise UpgradeError(f"{tenant.inventory_path}: cannot record the versions: {exc}") from None


def _with_versions(tenant: Tenant, versions: dict[str, str]) -> Tenant:
    """The tenant with these versions. Optional components follow `versions` exactly: going to a set
    without fastagi (an older release, or a run from before it was added) removes it."""
    merged = dict(tenant.versions)
    merged.update(versions)
    for key in OPTIONAL_KEYS:
        if key not in versions:
            merged.pop(key, None)
    return dataclasses.replace(tenant, versions=merged)


def _backup_hook() -> Any:
    """The backup operations module, when this build has it."""
    import importlib

    try:
        return importlib.import_module("omldeploy.ops.backup")
    except ModuleNotFoundError:
        return None


def _failed_before_changes(result: RunResult) -> bool:
    """A failure in the stage step (pull or prerequisite) happens before any file or unit changes."""
    failed = [h for h in result.hosts.values() if h.error or h.unreachable]
    return bool(failed) and all(h.failed_step == "stage" for h in failed)


def upgrade(tenant: Tenant, reporter: Reporter, *, release: str | None = None, backup: bool = True,
            rollback: bool = True, switchover: bool = False, force: bool = False) -> int:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with tenant_lock(tenant.folder, tenant.name, "upgrade"):
        try:
            return _upgrade(tenant, reporter, timings, release=release, backup=backup, rollback=rollback,
                            switchover=switchover, force=force)
        finally:
            # the step lines count from the start of the command (backup included): so does this total
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
            reporter.line(f"upgrade took {time.monotonic() - t0:.1f}s in all" + (f" ({parts})" if parts else ""))


def check_release(release: str) -> None:
    """Raise UpgradeError unless `release` is in the catalog and deployable."""
    rel = find_release(release)
    if rel is None:
        raise UpgradeError(f"release {release!r} is not in the catalog (known: "
                           f"{', '.join(r.name for r in releases())})")
    if not rel.deployable:
        raise UpgradeError(f"release {rel.name} cannot be deployed: {rel.refusal}")


def target_versions(tenant: Tenant, release: str | None) -> dict[str, str]:
    """The version set an upgrade of `tenant` deploys: the inventory's, or the release's tags over it."""
    target = dict(tenant.versions)
    if release is not None:
        check_release(release)
        rel = find_release(release)
        assert rel is not None
        for key in OPTIONAL_KEYS:  # the release decides these, unless the inventory names them itself
            if key not in rel.tags and not tenant.settings.has(key):
                target.pop(key, None)
        target.update(rel.tags)
    return target


def deployed_versions(folder: Path) -> dict[str, str] | None:
    """The versions of the last successful install, upgrade or rollback (None: never deployed)."""
    deployed = _deployed(folder)
    return deployed[-1].versions if deployed else None


def _upgrade(tenant: Tenant, reporter: Reporter, timings: dict[str, float], *, release: str | None, backup: bool,
             rollback: bool, switchover: bool = False, force: bool = False) -> int:
    target = target_versions(tenant, release)
    previous = deployed_versions(tenant.folder)
    new_tenant = _with_versions(tenant, target)
    changes = {k: (previous or {}).get(k, "-") + " -> " + v for k, v in target.items()
               if previous is None or previous.get(k) != v}
    changes.update({k: f"{v} -> (removed)" for k, v in (previous or {}).items()
                    if k in OPTIONAL_KEYS and k not in target})
    if not changes:
        reporter.line(f"tenant {tenant.name} already runs these versions; checking that the hosts match")
    else:
        reporter.line("version changes: " + ", ".join(f"{k} {c}" for k, c in sorted(changes.items())))
    backup_id = None
    if backup and changes:
        backup_op = _backup_hook()
        if backup_op is None:
            reporter.warn("no backup support in this build: upgrading WITHOUT a pre-upgrade backup")
        else:
            reporter.line("taking a pre-upgrade backup (skip with --no-backup)")
            t_backup = time.monotonic()
            outcome: tuple[str | None, int] = backup_op.backup_for_upgrade(tenant, reporter)
            timings["backup"] = time.monotonic() - t_backup
            backup_id, backup_code = outcome
            if backup_code != 0:
                reporter.line("the pre-upgrade backup failed: nothing was upgraded (use --no-backup to force)")
                return backup_code
    elif not backup:
        reporter.warn("--no-backup: upgrading WITHOUT a pre-upgrade backup; a failed schema migration "
                      "could not be undone")
    if release is not None:
        pin_versions(tenant, target)
    t_apply = time.monotonic()
    result = converge_result(new_tenant, "upgrade", reporter, switchover=switchover, force=force, extra={
        "backup": backup_id, "previous": previous,
        **({"backup_seconds": round(timings["backup"], 1)} if "backup" in timings else {})})
    timings["apply"] = time.monotonic() - t_apply
    if result is not None and not result.ok and _failed_before_changes(result):
        reporter.line("upgrade refused before anything changed (see above): every component still runs "
                      "the previous versions")
        if release is not None and previous is not None:
            pin_versions(tenant, previous)
        return 1
    if result is not None and result.ok:
        if changes and changes.keys() & {"omnileads_version"}:
            reporter.line("the web app changed version: its database migrations may have run. To return "
                          "to the old version WITH the old data: omldeploy rollback --with-data"
                          + (f" (backup {backup_id})" if backup_id else ""))
        return 0
    if not rollback or previous is None:
        reporter.line("upgrade FAILED; left as is (--no-rollback)" if not rollback
                      else "upgrade FAILED and there is no earlier successful run to roll back to")
        return 1
    reporter.line("upgrade FAILED a health gate: rolling back automatically to the previous versions")
    # The inventory goes back too, whatever the rollback's outcome: left naming the failed versions, the
    # next `install` would bring them back.
    pinned = pin_versions(tenant, previous)
    t_back = time.monotonic()
    back = converge(_with_versions(tenant, previous), "rollback", reporter, force=force,
                    extra={"reason": "automatic after failed upgrade"})
    timings["rollback"] = time.monotonic() - t_back
    kept = (f" The inventory names the previous versions again ({', '.join(pinned)}; the failed ones are kept "
            f"in {tenant.inventory_path.name}.bak).") if pinned else ""
    if back == 0:
        reporter.line("rolled back: every component runs the previous versions and is healthy. "
                      "The upgrade failed (see above)." + kept)
    else:
        reporter.line("the automatic rollback FAILED too (see above)." + kept + " Once the cause is fixed, "
                      f"finish it with: omldeploy rollback --tenant {tenant.name} --to 1 (entry 1 of "
                      "`omldeploy rollback --list`: the last versions that ran healthy); "
                      "`omldeploy status` shows what is down now")
    return 1


def rollback(tenant: Tenant, reporter: Reporter, *, to: int | None = None, with_data: bool = False) -> int:
    with tenant_lock(tenant.folder, tenant.name, "rollback"):
        return _rollback(tenant, reporter, to=to, with_data=with_data)


def _rollback(tenant: Tenant, reporter: Reporter, *, to: int | None, with_data: bool) -> int:
    hist = history(tenant.folder)
    last_failed = last_run_failed(tenant.folder)
    if to is None and last_failed and hist:
        # the hosts are not at entry 1 (the last healthy versions) now: going back means going there
        reporter.line("the last run failed: rolling back to the last versions that ran healthy (entry 1)")
        to = 1
    if len(hist) < 2 and to is None:
        raise UpgradeError("nothing to roll back to: the ledger has no earlier successful run with other versions")
    index = to if to is not None else 2
    chosen = next((rec for n, rec in hist if n == index), None)
    if chosen is None:
        raise UpgradeError(f"no entry {index} in the deployment history (1..{len(hist)}); "
                           "see `omldeploy rollback --list`")
    reporter.line(f"rolling back tenant {tenant.name} to the versions deployed {chosen.started} ({chosen.action})")
    pin_versions(tenant, chosen.versions)
    code = converge(_with_versions(tenant, chosen.versions), "rollback", reporter,
                    extra={"to": chosen.started})
    if code != 0 or not with_data:
        return code
    after = [r for r in ledger.read(tenant.folder) if r.action == "upgrade" and r.started > chosen.started]
    backup_id = next((r.extra.get("backup") for r in after if r.extra.get("backup")), None)
    backup_op = _backup_hook()
    if backup_id is None or backup_op is None:
        reporter.line("no pre-upgrade backup is recorded after that run: data left as is")
        return 1
    reporter.line(f"restoring the pre-upgrade backup {backup_id}")
    restored: int = backup_op.restore_for_rollback(tenant, reporter, str(backup_id))
    return restored
