"""restore: put a backup back, proving it good before anything live is touched.

Order (each step only runs if the previous one succeeded). Three SSH round trips in all: inspect;
2-3 in one Ansible run; 4-8 in one more, so the outage pays no Ansible start-up between its steps.
  1. inspect    the backup exists (manifest, or the seed's layout for seed/migration dumps), every object
                is present with its size, the dump is compatible with the server (major version)
  2. stage      Asterisk files downloaded next to /etc/asterisk/custom, sha256 checked; the backup's media
                (the app's media_root/) re-read from the bucket and checked against the manifest
  3. restore    the dump goes into a NEW scratch database: a custom-format dump is downloaded whole,
                sha256-checked, then loaded with `pg_restore -j` (tables and indexes in parallel); where
                that cannot be, it streams, sha256 checked at the end; a plain-SQL dump runs with
                ON_ERROR_STOP. The live database and every component keep running.
  -- anything failing up to here: scratch and staging are removed, the live system is unchanged --
  4. stop       the components that use the database (web app, cron, daphne, Asterisk, exporters...),
                in one systemd transaction per host
  5. switch     in one transaction: live database -> <db>__previous, scratch -> live
  6. files      /etc/asterisk/custom -> /etc/asterisk/custom_<id> (kept, as the seed does), staged -> custom
  7. start      the units step 4 stopped (nothing else restarts), in dependency order, waiting for health
  8. media      copied back into the bucket's media_root/, where the app reads it (server-side copy; after
                the start, so the outage does not grow with the number of media files)
     reload     `asterisk -rx 'dialplan reload'` in the Asterisk container
The outage (step 4 to the end of step 7) is reported and kept in the ledger (`outage_seconds`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from omldeploy.apply.engine import RunResult, Step, phase_steps, run_phases
from omldeploy.apply.select import select_units
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
from omldeploy.render.bundle import Bundle
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
    found = inspect_backup(sess, bid)
    dump, files, media, info = found.dump, found.files, found.media, found.info

    # 2-3. stage Asterisk files, restore into scratch: one SSH round trip -------------------------------
    staging = f"{CUSTOM_DIR}.restore-{bid}"
    prefix = layout.files_prefix(bid)
    file_hosts = list(t.files_hosts) if files else []
    if files and not file_hosts:
        say("  warning: the backup has Asterisk files but no host of this tenant runs Asterisk; skipped")
    prepare: list[Step] = []
    if media:
        say(f"  media: {len(media)} file(s) of {layout.MEDIA_SOURCE} in the backup; checking them before anything "
            "is changed")
        prepare.append(sess.call("checkmedia", {t.db_host: {"op": "verify", "objects": media}}))
    elif info.get("media_root_objects"):
        say(f"  media_root/: {info['media_root_objects']} object(s) in the bucket, none in this backup "
            "(left as they are)")
    if file_hosts:
        prepare.append(sess.call("stage", {h: {"op": "stage_files", "objects": files, "prefix": prefix,
                                               "staging": staging} for h in file_hosts}))
    prepare.append(sess.call("restoredb", {t.db_host: {"op": "restore_db", "db": db, "object": dump,
                                                       "scratch": scratch}}))
    say(f"  restoring into scratch database {scratch} (the live database '{db['database']}' keeps serving)")
    try:
        run = sess.run(prepare, progress_host=t.db_host)
        rep = sess.reports("restoredb", run)[t.db_host]
        damaged: list[dict[str, Any]] = [x for x in (sess.reports("checkmedia", run).get(t.db_host) or {})
                                         .get("results", []) if not x.get("ok")]
        if damaged:
            _quiet(sess, "dropscratch", {t.db_host: {"op": "drop_scratch", "db": db, "scratch": scratch}})
            raise OpFailed("; ".join(f"{x['key']}: {x.get('error')}" for x in damaged))
    except OpFailed:
        if file_hosts:
            _quiet(sess, "unstage", {h: {"op": "unstage", "staging": staging} for h in file_hosts})
        raise
    if file_hosts:
        say(f"  staged {len(files)} Asterisk file(s) on {', '.join(file_hosts)} (sha256 checked)")
    rate = rep["size"] / 1e6 / max(rep["seconds"], 0.001)
    how = f"pg_restore -j {rep['jobs']} after a {rep.get('download_seconds')}s download" \
        if int(rep.get("jobs") or 1) > 1 else "streamed"
    say(f"  restored {catalog.human_size(rep['size'])} ({rep['format']}, {how}) in {rep['seconds']}s "
        f"({rate:.1f} MB/s): {rep['tables']} table(s)"
        + (", sha256 matches the manifest" if rep.get("checked_sha") else ""))
    state["restore_seconds"] = rep["seconds"]

    # 4-8. the outage, in ONE SSH round trip: stop the database's clients, switch, files, start what was
    # stopped (waiting for health); then media and dialplan reload; nothing else restarts ------------------
    stops = {h: {"op": "units", "stop": units} for h, units in t.db_clients.items() if units}
    say("  stopping " + "; ".join(f"{h}: {', '.join(c['stop'])}" for h, c in stops.items()))
    steps: list[Step] = [sess.call("stop", stops)] if stops else []
    steps.append(sess.call("switch", {t.db_host: {"op": "swap_db", "db": db, "scratch": scratch,
                                                  "previous": previous}}))
    if file_hosts:
        steps.append(sess.call("files", {h: {"op": "swap_files", "staging": staging, "target": CUSTOM_DIR,
                                             "aside": f"{CUSTOM_DIR}_{bid}"} for h in file_hosts}))
    restart = _stopped(sess, t.db_clients)
    steps += phase_steps(sess.tenant, restart, ["activate"])
    if media:  # server-side copies, as many as the backup has files: after the start, not inside the outage
        steps.append(sess.call("media", {t.db_host: {"op": "restore_media", "objects": media,
                                                     "prefix": layout.MEDIA_SOURCE}}))
    if file_hosts:
        steps.append(sess.call("reload", {h: {"op": "units", "dialplan_reload": [t.asterisk_container]}
                                          for h in file_hosts}))
    if drop_previous:
        steps.append(sess.call("dropprevious", {t.db_host: {"op": "drop_scratch", "db": db, "scratch": previous}}))
    state["live_touched"] = True  # from here on components are down for a moment
    run = sess.run(steps)
    outage = _outage(run, set(stops) | {t.db_host})
    if outage is not None:
        state["outage_seconds"] = outage
    try:
        sess.reports("switch", run)  # raises for a failure in any step of the run, naming that step
    except OpFailed as exc:
        if exc.step not in ("stop", "switch"):
            state["database_replaced"] = True
        return _outage_failed(sess, exc, bid, scratch, staging, file_hosts)
    sw = sess.reports("switch", run)[t.db_host]
    state["database_replaced"] = True
    if sw.get("previous"):
        say(f"  live database switched; the one it replaced is kept as '{previous}'")
    for h, r in sess.reports("files", run).items():
        say(f"  {h}: {len(r.get('restored', []))} file(s) in {CUSTOM_DIR}"
            + (f", previous ones kept in {r['previous_kept_in']}" if r.get("previous_kept_in") else ""))
    for put in sess.reports("media", run).values():
        say(f"  media: {len(put.get('copied', []))} file(s) put back into {layout.MEDIA_SOURCE}, "
            f"{put.get('unchanged', 0)} already identical")
    for h, act in sess.reports("activate", run).items():
        say(f"  {h}: started {', '.join(act.get('started', []) + act.get('restarted', [])) or 'nothing'} (healthy)")
    if file_hosts:
        say(f"  dialplan reloaded on {', '.join(file_hosts)}")
    if drop_previous and sw.get("previous"):
        say(f"  dropped '{previous}' (--drop-previous)")
    say(f"restore of {bid} done: every component is up and healthy"
        + (f"; outage {outage:.1f}s (from stopping the database's clients to all of them healthy)"
           if outage is not None else ""))
    return EXIT_OK



@dataclass(frozen=True)
class Inspected:
    """A backup as the bucket holds it, proven complete and compatible with the tenant's server."""

    dump: dict[str, Any]
    files: list[dict[str, Any]]
    media: list[dict[str, Any]]
    info: dict[str, Any]


def inspect_backup(sess: Session, bid: str) -> Inspected:
    """Step 1 of a restore (and the whole check of a drill before its scratch load): the manifest and
    every object it names are there with their sizes, a dump without manifest is a complete dump, and the
    dump's PostgreSQL is not newer than the tenant's. OpFailed otherwise (EXIT_INPUT when no such backup)."""
    t, say = sess.target, sess.reporter.line
    db = t.db
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

    return Inspected(dump=dump, files=list(files), media=list(media), info=info)


def _stopped(sess: Session, clients: dict[str, list[str]]) -> Bundle:
    """The bundle narrowed to the units the restore stopped, host by host (what must start again).
    Without their pre-start hooks: those create the tenant database (and plperl) when missing, and the
    switch has just put the restored one in place (the seed's restore skips plperl too), so inside the
    outage they would only cost a one-shot container each (~0.7 s)."""
    bundle = render_tenant(sess.tenant)
    chosen = {id(u) for hb in bundle.hosts for u in hb.units if u.name in clients.get(hb.host, [])}
    out = select_units(bundle, lambda u: id(u) in chosen)
    for hb in out.hosts:
        hb.units = [replace(u, pre_start=()) for u in hb.units]
    return out


#: what an activate does after its last unit is healthy (the crash-loop check, the balancer): not outage
AFTER_HEALTHY = ("settle", "drain")


def _outage(run: RunResult, hosts: set[str]) -> float | None:
    """Seconds from the first stop to the last unit healthy again: the stop step's start to the end of
    the last activate, less what that activate did once every unit was healthy. Controller clock and
    task boundaries, so an upper bound of the time a database client was down."""
    starts = [h.spans["stop"][0] for n, h in run.hosts.items() if n in hosts and "stop" in h.spans]
    ends = []
    for h in run.hosts.values():
        after = sum(float(row.get("seconds") or 0) for row in (h.reports.get("activate") or {}).get("timings", [])
                    if row.get("phase") in AFTER_HEALTHY)
        ends += [span[1] - after for step, span in h.spans.items() if step.startswith("activate")]
    if not starts or not ends:
        return None
    return round(max(ends) - min(starts), 1)


def _outage_failed(sess: Session, exc: OpFailed, bid: str, scratch: str, staging: str,
                   file_hosts: list[str]) -> int:
    """The outage run stopped at a failing step: bring back what it left down, say what is where."""
    t, say = sess.target, sess.reporter.line
    if exc.step in ("stop", "switch"):
        say(f"  could not switch databases ({exc}); the live database was not replaced; restarting components")
        _quiet(sess, "dropscratch", {t.db_host: {"op": "drop_scratch", "db": t.db, "scratch": scratch}})
        if file_hosts:
            _quiet(sess, "unstage", {h: {"op": "unstage", "staging": staging} for h in file_hosts})
        _start(sess)
        raise exc
    say(f"FAILED: restore of {bid}: {exc}")
    if exc.step in ("files", "media"):
        say("  the restored database is live, but putting the backup's files back failed; starting the components")
        _start(sess)
    elif exc.step == "activate":
        say("  the database was restored, but not every component came back healthy; fix the cause "
            f"and run `omldeploy install --tenant {sess.tenant.name}`")
    return EXIT_FAILED


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
