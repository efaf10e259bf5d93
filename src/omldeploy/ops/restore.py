"""restore: put a backup back, proving it good before anything live is touched.

Order (each step only runs if the previous one succeeded):
  1. inspect    the backup exists (manifest, or the seed's layout for seed/migration dumps), every object
                is present with its size, the dump is compatible with the server (major version)
  2. stage      Asterisk files downloaded next to /etc/asterisk/custom, sha256 checked; the backup's media
                (the app's media_root/) re-read from the bucket and checked against the manifest
  3. restore    the dump is streamed into a NEW scratch database, sha256 checked at the end; a plain-SQL
                dump runs with ON_ERROR_STOP. The live database and every component keep running.
  -- anything failing up to here: scratch and staging are removed, the live system is unchanged --
  4. stop       the components that use the database (web app, cron, daphne, Asterisk, exporters...)
  5. switch     in one transaction: live database -> <db>__previous, scratch -> live
  6. files      /etc/asterisk/custom -> /etc/asterisk/custom_<id> (kept, as the seed does), staged -> custom;
                media copied back into the bucket's media_root/, where the app reads it (server-side copy)
  7. start      every unit, in dependency order, waiting for health (the install engine's activate phase)
  8. reload     `asterisk -rx 'dialplan reload'` in the Asterisk container
"""

from __future__ import annotations

import time
from typing import Any

from omldeploy.apply.engine import run_phases
from omldeploy.backup import catalog, layout, manifest
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
from omldeploy.render.backup_target import CUSTOM_DIR, scratch_names
from omldeploy.render.build import render_tenant
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock


def restore(tenant: Tenant, reporter: Reporter, backup_id: str, *, drop_previous: bool = False) -> int:
    if not layout.valid_id(backup_id):
        reporter.line(f"FAILED: '{backup_id}' is not a backup id (letters, digits, '.', '_', '-')")
        return EXIT_INPUT
    try:
        sess = open_session(tenant, reporter)
    except OpFailed as exc:
        reporter.line(f"FAILED: {exc}")
        return exc.code
    started = ledger.now()
    t0 = time.time()
    with tenant_lock(tenant.folder, tenant.name, "restore"), logged(tenant, reporter, "restore"):
        state: dict[str, Any] = {"live_touched": False}
        try:
            code = _restore(sess, backup_id, state, drop_previous)
        except OpFailed as exc:
            reporter.line(f"FAILED: restore of {backup_id}: {exc}")
            if not state["live_touched"]:
                reporter.line("  nothing was changed: the live database, the Asterisk files and every component "
                              "are as they were")
            code = exc.code
        ledger.append(tenant.folder, ledger.Record(
            action="restore", outcome="ok" if code == 0 else "failed", started=started,
            duration=round(time.time() - t0, 1), versions=dict(tenant.versions), hosts=[h.name for h in tenant.hosts],
            detail="" if code == 0 else "see the run log", extra={"id": backup_id, **state}),
            redact=redactor(tenant))
        return code


def _restore(sess: Session, bid: str, state: dict[str, Any], drop_previous: bool) -> int:
    t, say = sess.target, sess.reporter.line
    db = t.db
    scratch, previous = scratch_names(db["database"])
    say(f"restore {bid} into tenant {sess.tenant.name} ({sess.tenant.layout.describe()}) from {t.where}")

    # 1. inspect ------------------------------------------------------------------------------------
    info = sess.step("inspect", {t.db_host: {"op": "inspect", "ts": bid, "db": db}})[t.db_host]
    doc = info.get("manifest")
    if doc is not None:
        bad = manifest.problems(doc)
        if bad:
            raise OpFailed(f"manifest of {bid} unusable: {'; '.join(bad)}")
        if info.get("missing"):
            raise OpFailed(f"backup {bid} is incomplete in the bucket: missing or wrong size: "
                           f"{', '.join(info['missing'])}")
        dump = manifest.dump_object(doc)
        files = manifest.file_objects(doc)
        media = manifest.media_objects(doc)
        source_major = manifest.server_major(doc)
    else:
        dump = info.get("dump")
        files = info.get("files", [])
        media = []  # seed backups and migrations: media was synced into media_root/ by hand
        source_major = None
    if not dump:
        hint = _known(sess)
        raise OpFailed(f"no backup '{bid}' in {t.where}: neither {layout.manifest_key(bid)} nor "
                       f"{layout.dump_key(bid, 'custom')} / {layout.dump_key(bid, 'plain')} exists. {hint}", EXIT_INPUT)
    target_major = int(info.get("server_version_num") or 0) // 10000
    if doc is None:
        # a seed or hand-made dump: no manifest, so prove it readable and learn its origin first
        say(f"  {dump['key']}: no manifest (seed backup or migration dump); checking it is a complete dump")
        rep = sess.step("verify", {t.db_host: {"op": "verify", "db": db, "objects": [dump]}},
                        progress_host=t.db_host)[t.db_host]
        r = rep["results"][0]
        if not r.get("ok"):
            raise OpFailed(f"{dump['key']}: {r.get('error')}")
        source_major = r.get("dumped_from_major")
    if source_major and target_major and source_major > target_major:
        raise OpFailed(f"incompatible dump: it comes from PostgreSQL {source_major}, this tenant runs PostgreSQL "
                       f"{info.get('server_version')}; restore it on a server of version {source_major} or later "
                       f"(postgres_version)", EXIT_INPUT)
    say(f"  dump {dump['key']} ({catalog.human_size(int(dump.get('size') or 0))}"
        + (f", from PostgreSQL {source_major}" if source_major else "") + f"), {len(files)} Asterisk file(s); "
        f"target PostgreSQL {info.get('server_version')} via {t.db_host}")
    if media:
        say(f"  media: {len(media)} file(s) of {layout.MEDIA_SOURCE} in the backup; checking them before anything "
            "is changed")
        checked = sess.step("checkmedia", {t.db_host: {"op": "verify", "objects": media}},
                            progress_host=t.db_host)[t.db_host]
        damaged: list[dict[str, Any]] = [x for x in checked.get("results", []) if not x.get("ok")]
        if damaged:
            raise OpFailed("; ".join(f"{x['key']}: {x.get('error')}" for x in damaged))
    elif info.get("media_root_objects"):
        say(f"  media_root/: {info['media_root_objects']} object(s) in the bucket, none in this backup "
            "(left as they are)")

    # 2. stage Asterisk files -------------------------------------------------------------------------
    staging = f"{CUSTOM_DIR}.restore-{bid}"
    prefix = layout.files_prefix(bid)
    file_hosts = list(t.files_hosts) if files else []
    if files and not file_hosts:
        say("  warning: the backup has Asterisk files but no host of this tenant runs Asterisk; skipped")
    if file_hosts:
        sess.step("stage", {h: {"op": "stage_files", "objects": files, "prefix": prefix, "staging": staging}
                            for h in file_hosts})
        say(f"  staged {len(files)} Asterisk file(s) on {', '.join(file_hosts)} (sha256 checked)")

    # 3. restore into scratch ---------------------------------------------------------------------
    try:
        say(f"  restoring into scratch database {scratch} (the live database '{db['database']}' keeps serving)")
        rep = sess.step("restoredb", {t.db_host: {"op": "restore_db", "db": db, "object": dump, "scratch": scratch}},
                        progress_host=t.db_host)[t.db_host]
    except OpFailed:
        if file_hosts:
            _quiet(sess, "unstage", {h: {"op": "unstage", "staging": staging} for h in file_hosts})
        raise
    rate = rep["size"] / 1e6 / max(rep["seconds"], 0.001)
    say(f"  restored {catalog.human_size(rep['size'])} ({rep['format']}) in {rep['seconds']}s ({rate:.1f} MB/s): "
        f"{rep['tables']} table(s)" + (", sha256 matches the manifest" if rep.get("checked_sha") else ""))
    state["restore_seconds"] = rep["seconds"]

    # 4-5. stop the database's clients, switch --------------------------------------------------------
    stops = {h: {"op": "units", "stop": units} for h, units in t.db_clients.items() if units}
    say("  stopping " + "; ".join(f"{h}: {', '.join(c['stop'])}" for h, c in stops.items()))
    state["live_touched"] = True  # from here on components are down for a moment
    try:
        if stops:
            sess.step("stop", stops)
        sw = sess.step("switch", {t.db_host: {"op": "swap_db", "db": db, "scratch": scratch,
                                              "previous": previous}})[t.db_host]
    except OpFailed as exc:
        say(f"  could not switch databases ({exc}); the live database was not replaced; restarting components")
        _quiet(sess, "dropscratch", {t.db_host: {"op": "drop_scratch", "db": db, "scratch": scratch}})
        if file_hosts:
            _quiet(sess, "unstage", {h: {"op": "unstage", "staging": staging} for h in file_hosts})
        _start(sess)
        raise
    state["database_replaced"] = True
    if sw.get("previous"):
        say(f"  live database switched; the one it replaced is kept as '{previous}'")

    # 6. Asterisk files --------------------------------------------------------------------------------
    if file_hosts:
        rep = sess.step("files", {h: {"op": "swap_files", "staging": staging, "target": CUSTOM_DIR,
                                      "aside": f"{CUSTOM_DIR}_{bid}"} for h in file_hosts})
        for h, r in rep.items():
            say(f"  {h}: {len(r.get('restored', []))} file(s) in {CUSTOM_DIR}"
                + (f", previous ones kept in {r['previous_kept_in']}" if r.get("previous_kept_in") else ""))

    if media:
        put = sess.step("media", {t.db_host: {"op": "restore_media", "objects": media,
                                              "prefix": layout.MEDIA_SOURCE}})[t.db_host]
        say(f"  media: {len(put.get('copied', []))} file(s) put back into {layout.MEDIA_SOURCE}, "
            f"{put.get('unchanged', 0)} already identical")

    # 7-8. start, health, dialplan ----------------------------------------------------------------------
    if not _start(sess):
        return EXIT_FAILED
    if file_hosts:
        sess.step("reload", {h: {"op": "units", "dialplan_reload": [t.asterisk_container]} for h in file_hosts})
        say(f"  dialplan reloaded on {', '.join(file_hosts)}")
    if drop_previous and sw.get("previous"):
        sess.step("dropprevious", {t.db_host: {"op": "drop_scratch", "db": db, "scratch": previous}})
        say(f"  dropped '{previous}' (--drop-previous)")
    say(f"restore of {bid} done: every component is up and healthy")
    return EXIT_OK


def _start(sess: Session) -> bool:
    bundle = render_tenant(sess.tenant)
    result = run_phases(sess.tenant, bundle, ["activate"], progress=sess.reporter.progress,
                        stdout=sess.reporter.ansible)
    if not result.ok:
        for h in result.hosts.values():
            if h.error:
                sess.reporter.line(f"FAILED: {h.host}: {h.error}")
        if result.aborted:
            sess.reporter.line(f"FAILED: {result.aborted}")
        sess.reporter.line("  the database was restored, but not every component came back healthy; fix the cause "
                           f"and run `omldeploy install --tenant {sess.tenant.name}`")
    return result.ok


def _quiet(sess: Session, name: str, calls: dict[str, dict[str, Any]]) -> None:
    try:
        sess.step(name, calls)
    except OpFailed as exc:
        sess.reporter.line(f"  warning: cleanup step {name} failed: {exc}")


def _known(sess: Session) -> str:
    try:
        entries, _, _ = fetch_catalog(sess)
    except OpFailed:
        return ""
    usable = [e.id for e in entries if e.kind != "incomplete"]
    if not usable:
        return "The bucket holds no backups."
    return f"Known backups (newest last): {', '.join(usable[-8:])} (see `omldeploy backups list`)."
