"""backup, backups list|verify|prune: the controller side (the host side is the omldeploy_backup module).

A backup is: the tenant database dumped (custom format by default) and streamed to the bucket from the
host that reaches PostgreSQL, the Asterisk custom files uploaded from the voice host, a snapshot of the
app's media (`media_root/` in the bucket, which is where the app reads it), then a manifest with sizes
and sha256 of every object. The manifest is written last, so a backup without one never
passes for complete.
"""

from __future__ import annotations

import time
from typing import Any

from omldeploy import __version__
from omldeploy.backup import catalog, layout, manifest, retention
from omldeploy.inventory.model import Tenant
from omldeploy.ops.backup_session import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    OpFailed,
    Session,
    fetch_catalog,
    logged,
    open_session,
)
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.render.backup_target import CUSTOM_DIR, Target
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_OK", "OpFailed", "backup", "backup_for_upgrade", "list_backups",
           "prune", "restore_for_rollback", "run_backup", "verify"]

# ----------------------------------------------------------------------------- backup

def backup(tenant: Tenant, reporter: Reporter, *, fmt: str = "custom", verify: bool = False,
           backup_id: str | None = None) -> int:
    return run_backup(tenant, reporter, fmt=fmt, verify=verify, backup_id=backup_id)[0]


def backup_for_upgrade(tenant: Tenant, reporter: Reporter) -> tuple[str | None, int]:
    """The pre-upgrade backup (called by ops/upgrade.py under its lock): (backup id, exit code)."""
    code, bid = run_backup(tenant, reporter, fmt="custom", verify=False)
    return (bid if code == 0 else None), code


def restore_for_rollback(tenant: Tenant, reporter: Reporter, backup_id: str) -> int:
    """`rollback --with-data`: restore the backup taken before the upgrade being rolled back."""
    from omldeploy.ops.restore import restore

    return restore(tenant, reporter, backup_id)


def run_backup(tenant: Tenant, reporter: Reporter, *, fmt: str = "custom", verify: bool = False,
               backup_id: str | None = None, retention: bool = True) -> tuple[int, str | None]:
    """(exit code, backup id). `retention`: apply the inventory's backup_keep/backup_keep_days after a
    good backup, as scheduled backups do (`tenant destroy --keep-backups` keeps every backup instead)."""
    try:
        sess = open_session(tenant, reporter)
    except OpFailed as exc:
        reporter.line(f"FAILED: {exc}")
        return exc.code, None
    t = sess.target
    started_iso = ledger.now()
    with tenant_lock(tenant.folder, tenant.name, "backup"), logged(tenant, reporter, "backup"):
        t0 = time.time()
        bid = backup_id or layout.new_id(t0)
        reporter.line(f"backup {bid} of tenant {tenant.name} ({tenant.layout.describe()}) to {t.where}")
        reporter.line(f"  database '{t.db['database']}' from {t.db_host} ({_access(t)}), {fmt} format; "
                      f"Asterisk files from {t.files_host or '(no voice host)'}:{CUSTOM_DIR}")
        try:
            standby, why = dump_source(tenant)
            reporter.line(f"  dumped from {why}")
            db = {**t.db, "host": standby} if standby else t.db
            # `ts`: the database host first makes sure no backup of this id exists (no extra round trip)
            calls: dict[str, dict[str, Any]] = {
                t.db_host: {"op": "backup", "db": db, "format": fmt, "dump_key": layout.dump_key(bid, fmt),
                            "ts": bid, "compress": tenant.settings.num("backup_compression"),
                            "media": {"source": layout.MEDIA_SOURCE, "prefix": layout.media_prefix(bid)}}}
            if t.files_host:
                files = {"dir": CUSTOM_DIR, "prefix": layout.files_prefix(bid)}
                calls.setdefault(t.files_host, {"op": "backup", "ts": bid})["files"] = files
            try:
                reports = sess.step("backup", calls, progress_host=t.db_host)
            except OpFailed as exc:
                if not standby:
                    raise
                # e.g. the dump cancelled by a recovery conflict on the standby: the primary has none
                reporter.line(f"  the dump from the standby failed ({exc}); dumping from the primary instead")
                calls[t.db_host]["db"] = t.db
                for call in calls.values():  # the id was free a moment ago: the first try's objects are ours
                    call.pop("ts", None)
                reports = sess.step("backup", calls, progress_host=t.db_host)
            _refuse_existing(bid, reports)  # a taken id: every host said so and wrote nothing
            objects = [o for h in calls for o in reports[h].get("objects", [])]
            dbr = reports[t.db_host]
            duration = time.time() - t0
            doc = manifest.build(backup_id=bid, tenant=tenant.name, layout=tenant.layout.name,
                                 versions=dict(tenant.versions), images=t.images, db=dbr, objects=objects,
                                 started=t0, duration=duration, dump_format=fmt, db_mode=t.db["mode"],
                                 files_host=t.files_host, files_dir=CUSTOM_DIR)
            sess.step("manifest", {t.db_host: {"op": "put_json", "key": layout.manifest_key(bid), "document": doc}})
        except OpFailed as exc:
            reporter.line(f"FAILED: backup {bid}: {exc}")
            reporter.line("  nothing usable was written: a backup without manifest.json is never offered for "
                          "restore (`omldeploy backups prune` removes leftovers)")
            _record(tenant, "backup", "failed", started_iso, t0, {"id": bid}, str(exc))
            return exc.code, None
        dump = manifest.dump_object(doc) or {}
        rate = dump.get("size", 0) / 1e6 / max(dbr.get("dump_seconds") or duration, 0.001)
        reporter.line(f"  {dump.get('key')}: {catalog.human_size(int(dump.get('size', 0)))} in "
                      f"{dbr.get('dump_seconds')}s ({rate:.1f} MB/s), PostgreSQL {dbr.get('server_version')}, "
                      f"sha256 {str(dump.get('sha256'))[:16]}…")
        reporter.line(f"  {doc['asterisk']['files']} Asterisk file(s) under {layout.files_prefix(bid)}")
        reporter.line(f"  {doc['media']['files']} media file(s) ({catalog.human_size(doc['media']['bytes'])}) of "
                      f"{layout.MEDIA_SOURCE} under {layout.media_prefix(bid)}")
        reporter.line(f"backup {bid} done in {duration:.1f}s: {len(objects)} object(s), "
                      f"{catalog.human_size(doc['total_bytes'])}, manifest {layout.manifest_key(bid)}")
        code = EXIT_OK
        if verify:
            code = _verify_ids(sess, [bid], {bid: doc})
        _record(tenant, "backup", "ok" if code == 0 else "failed", started_iso, t0,
                {"id": bid, "bytes": doc["total_bytes"], "objects": len(objects)}, "")
        if code == 0 and retention:
            code = _scheduled_retention(sess)
        return code, bid


def _refuse_existing(bid: str, reports: dict[str, dict[str, Any]]) -> None:
    """Every host writing under the id checked first that no backup holds it (and then wrote nothing)."""
    taken = sorted({k for r in reports.values() for k in r.get("exists", [])})
    if taken:
        raise OpFailed(f"a backup with id {bid} already exists in the bucket ({', '.join(taken)})", EXIT_INPUT)


def dump_source(tenant: Tenant) -> tuple[str | None, str]:
    """HA: the standby's address when it streams with little lag (the dump then loads the standby, not
    the primary that serves the calls), else None (the primary, through the RW VIP), with the reason."""
    if tenant.layout.shape.value != "ha":
        return None, "the database host"
    from omldeploy.ops.ha_facts import LAG_LIMIT_BYTES, read

    facts, pairs = read(tenant)
    pg = pairs[0]
    primary = pg.active[0] if len(pg.active) == 1 else None
    replicas = (facts.get(primary or "", {}).get("pg") or {}).get("replicas") or []
    lag = min((int(r.get("lag_bytes") or 0) for r in replicas if r.get("state") == "streaming"), default=None)
    ro = tenant.settings.text("postgres_ro_host")
    if pg.ok and primary and lag is not None and lag <= LAG_LIMIT_BYTES:
        return ro, f"the standby (RO VIP {ro}, lag {lag} bytes)"
    return None, f"the primary (RW VIP): {'; '.join(pg.problems) or f'the standby lags {lag} bytes'}"


def _access(t: Target) -> str:
    if t.db["mode"] == "exec":
        return f"podman exec {t.db['container']}"
    return f"client container with {t.db['env_file']}"


def _record(tenant: Tenant, action: str, outcome: str, started: str, t0: float, extra: dict[str, Any],
            detail: str) -> None:
    ledger.append(tenant.folder, ledger.Record(action=action, outcome=outcome, started=started,
                                               duration=round(time.time() - t0, 1), versions=dict(tenant.versions),
                                               hosts=[], detail=detail, extra=extra),
                  redact=redactor(tenant))


def _scheduled_retention(sess: Session) -> int:
    s = sess.tenant.settings
    keep = s.num("backup_keep") if s.has("backup_keep") else None
    days = float(s.num("backup_keep_days")) if s.has("backup_keep_days") else None
    if keep is None and days is None:
        return EXIT_OK
    sess.reporter.line(f"retention from the inventory (backup_keep={keep}, backup_keep_days={days}):")
    return _prune(sess, keep, days, yes=True)


# ----------------------------------------------------------------------------- list

def list_backups(tenant: Tenant, reporter: Reporter) -> tuple[int, list[catalog.Entry], int]:
    try:
        sess = open_session(tenant, reporter)
        entries, _, media = fetch_catalog(sess)
    except OpFailed as exc:
        reporter.line(f"FAILED: {exc}")
        return exc.code, [], 0
    return EXIT_OK, entries, media


# ----------------------------------------------------------------------------- verify

def verify(tenant: Tenant, reporter: Reporter, backup_id: str | None = None) -> int:
    try:
        sess = open_session(tenant, reporter)
    except OpFailed as exc:
        reporter.line(f"FAILED: {exc}")
        return exc.code
    with tenant_lock(tenant.folder, tenant.name, "backups-verify"), logged(tenant, reporter, "backups-verify"):
        try:
            entries, docs, _ = fetch_catalog(sess)
            if backup_id is not None:
                chosen = [e for e in entries if e.id == backup_id]
                if not chosen:
                    raise OpFailed(f"no backup {backup_id} in {sess.target.where}; "
                                   f"known: {', '.join(e.id for e in entries[-10:]) or 'none'}", EXIT_INPUT)
            else:
                chosen = [e for e in entries if e.kind != "incomplete"]
                if not chosen:
                    reporter.line(f"no backups in {sess.target.where}")
                    return EXIT_OK
            ids = [e.id for e in chosen]
            return _verify_ids(sess, ids, {i: docs.get(layout.manifest_key(i)) for i in ids})
        except OpFailed as exc:
            reporter.line(f"FAILED: {exc}")
            return exc.code


def objects_to_check(sess: Session, bid: str, doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict):
        bad = manifest.problems(doc)
        if bad:
            raise OpFailed(f"backup {bid}: manifest unusable: {'; '.join(bad)}")
        return [dict(o) for o in doc["objects"]]
    t = sess.target
    rep = sess.step("inspect", {t.db_host: {"op": "inspect", "ts": bid}})[t.db_host]
    out = []
    if rep.get("dump"):
        out.append(rep["dump"])
    out += rep.get("files", [])
    return out


def _verify_ids(sess: Session, ids: list[str], docs: dict[str, Any]) -> int:
    t = sess.target
    failed = 0
    for bid in ids:
        objects = objects_to_check(sess, bid, docs.get(bid))
        if not objects:
            sess.reporter.line(f"backup {bid}: FAILED: no objects found")
            failed += 1
            continue
        rep = sess.step("verify", {t.db_host: {"op": "verify", "db": t.db, "objects": objects}},
                        progress_host=t.db_host)[t.db_host]
        results = rep.get("results", [])
        ok = bool(rep.get("ok"))
        for r in results:
            if not r.get("ok"):
                sess.reporter.line(f"backup {bid}: FAILED {r['key']}: {r.get('error')}")
        dump = next((r for r in results if r.get("format") in ("custom", "plain")), None)
        what = ""
        if dump and dump.get("ok"):
            what = (f"; dump readable ({dump['format']}"
                    + (f", {dump['toc_entries']} TOC entries" if dump.get("toc_entries") else "") + ")")
        checked = sum(1 for r in results if r.get("checked_sha"))
        sess.reporter.line(f"backup {bid}: {'ok' if ok else 'FAILED'}: {len(results)} object(s) re-read, "
                           f"{checked} sha256 checked against the manifest{what}")
        record = {"ok": ok, "epoch": int(time.time()), "verified_at": ledger.now(), "tool_version": __version__,
                  "results": [{k: r.get(k) for k in ("key", "ok", "error", "size", "sha256")} for r in results]}
        if isinstance(docs.get(bid), dict):  # seed backups stay untouched: we only annotate our own
            sess.step("verifyrecord", {t.db_host: {"op": "put_json", "key": layout.verify_key(bid),
                                                   "document": record}})
        failed += 0 if ok else 1
    return EXIT_OK if failed == 0 else EXIT_FAILED


# ----------------------------------------------------------------------------- prune

def prune(tenant: Tenant, reporter: Reporter, *, keep: int | None, keep_days: float | None, yes: bool) -> int:
    try:
        sess = open_session(tenant, reporter)
    except OpFailed as exc:
        reporter.line(f"FAILED: {exc}")
        return exc.code
    with tenant_lock(tenant.folder, tenant.name, "backups-prune"), logged(tenant, reporter, "backups-prune"):
        return _prune(sess, keep, keep_days, yes)


def _prune(sess: Session, keep: int | None, keep_days: float | None, yes: bool) -> int:
    try:
        t = sess.target
        listing = sess.step("catalog", {t.db_host: {"op": "catalog"}})[t.db_host]
        entries = catalog.build(listing.get("objects", []), listing.get("documents", {}))
        doomed = retention.select(entries, keep=keep, keep_days=keep_days, now=time.time())
        kept = [e for e in entries if e not in doomed]
        if not doomed:
            sess.reporter.line(f"nothing to prune: {len(kept)} backup(s) kept")
            return EXIT_OK
        for e in doomed:
            sess.reporter.line(f"{'deleting' if yes else 'would delete'} backup {e.id} ({e.kind}, "
                               f"{catalog.human_size(e.size)}, {e.objects} object(s))")
        if not yes:
            sess.reporter.line(f"dry run: {len(doomed)} backup(s) would be deleted, {len(kept)} kept; "
                               "add --yes to delete")
            return EXIT_OK
        keys = retention.object_keys(listing.get("objects", []), {e.id for e in doomed})
        sess.step("delete", {t.db_host: {"op": "delete", "keys": keys}})
        sess.reporter.line(f"deleted {len(doomed)} backup(s) ({len(keys)} object(s)), {len(kept)} kept")
        return EXIT_OK
    except (OpFailed, ValueError) as exc:
        sess.reporter.line(f"FAILED: {exc}")
        return exc.code if isinstance(exc, OpFailed) else EXIT_INPUT
