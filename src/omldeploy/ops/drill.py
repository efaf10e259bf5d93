"""Restore drill: prove a tenant's backup restores, without touching anything live.

The newest complete backup (or the one named) is inspected like a restore's first step; its Asterisk
files and media are re-read from the bucket and checked against the manifest's sha256; its dump is
loaded into a scratch database (`<db>__drill`) on the tenant's own database server, the way a restore
would load it; the result must hold tables. The scratch database is then dropped. One SSH round trip
after the inspection; the live database, the files on the hosts and every unit are left as they are.

Each drill is kept in the ledger (`drill-restore`, ok or failed, with the backup id and figures), which
`fleet status` reads to flag tenants whose backups have not been proven for too long.
"""

from __future__ import annotations

import time
from typing import Any

from omldeploy.backup import catalog
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
from omldeploy.ops.restore import inspect_backup
from omldeploy.render.backup_target import drill_name
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock

ACTION = "drill-restore"


def drill(tenant: Tenant, reporter: Reporter, backup_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """(exit code, figures). Takes the tenant lock: an upgrade restarting PostgreSQL mid-drill would fail
    it for nothing, and a restore runs on the same server."""
    try:
        sess = open_session(tenant, reporter)
    except OpFailed as exc:
        reporter.line(f"FAILED: {exc}")
        return exc.code, {"error": str(exc)}
    started, t0 = ledger.now(), time.time()
    figures: dict[str, Any] = {}
    with tenant_lock(tenant.folder, tenant.name, ACTION), logged(tenant, reporter, ACTION):
        try:
            code = _drill(sess, backup_id, figures)
        except OpFailed as exc:
            reporter.line(f"FAILED: restore drill of {figures.get('id') or backup_id or 'the newest backup'}: {exc}")
            figures["error"] = str(exc)
            code = exc.code
        ledger.append(tenant.folder, ledger.Record(
            action=ACTION, outcome="ok" if code == EXIT_OK else "failed", started=started,
            duration=round(time.time() - t0, 1), versions=dict(tenant.versions), hosts=[sess.target.db_host],
            detail="" if code == EXIT_OK else str(figures.get("error", ""))[:500], extra=figures),
            redact=redactor(tenant))
    figures["seconds"] = round(time.time() - t0, 1)
    return code, figures


def _drill(sess: Session, backup_id: str | None, figures: dict[str, Any]) -> int:
    t, say = sess.target, sess.reporter.line
    if backup_id is None:
        entries, _, _ = fetch_catalog(sess)
        done = [e for e in entries if e.kind != "incomplete" and e.created_epoch]
        if not done:
            raise OpFailed(f"no complete backup in {t.where} to drill", EXIT_INPUT)
        backup_id = max(done, key=lambda e: e.created_epoch or 0).id
    figures["id"] = backup_id
    say(f"restore drill of {backup_id} for tenant {sess.tenant.name} from {t.where} (nothing live is touched)")
    found = inspect_backup(sess, backup_id)
    scratch = drill_name(t.db["database"])
    steps = []
    objects = found.files + found.media
    if objects:
        steps.append(sess.call("checkfiles", {t.db_host: {"op": "verify", "objects": objects}}))
    steps.append(sess.call("restoredb", {t.db_host: {"op": "restore_db", "db": t.db, "object": found.dump,
                                                     "scratch": scratch}}))
    steps.append(sess.call("dropscratch", {t.db_host: {"op": "drop_scratch", "db": t.db, "scratch": scratch}}))
    run = sess.run(steps, progress_host=t.db_host)
    try:
        rep = sess.reports("restoredb", run)[t.db_host]
    except OpFailed:
        # restore_db drops its scratch database on its own failure; a failed drop is retried once here
        if "restoredb" in (run.hosts[t.db_host].reports if t.db_host in run.hosts else {}):
            _drop(sess, scratch)
        raise
    bad = [x for x in (sess.reports("checkfiles", run).get(t.db_host) or {}).get("results", []) if not x.get("ok")]
    figures.update(tables=rep["tables"], size=rep["size"], restore_seconds=rep["seconds"], jobs=rep.get("jobs"),
                   sha256_checked=bool(rep.get("checked_sha")), files_checked=len(objects))
    if bad:
        raise OpFailed("; ".join(f"{x['key']}: {x.get('error')}" for x in bad))
    if int(rep["tables"]) < 1:
        raise OpFailed(f"the dump restored without error but holds no table ({catalog.human_size(rep['size'])})",
                       EXIT_FAILED)
    say(f"  restored {catalog.human_size(rep['size'])} into scratch database {scratch} in {rep['seconds']}s: "
        f"{rep['tables']} table(s)" + (", sha256 matches the manifest" if rep.get("checked_sha") else "")
        + (f"; {len(objects)} file(s) re-read and checked" if objects else "") + f"; {scratch} dropped")
    say(f"restore drill of {backup_id}: ok")
    return EXIT_OK


def _drop(sess: Session, scratch: str) -> None:
    try:
        sess.step("dropscratch", {sess.target.db_host: {"op": "drop_scratch", "db": sess.target.db,
                                                        "scratch": scratch}})
    except OpFailed as exc:
        sess.reporter.line(f"  warning: the scratch database {scratch} could not be dropped: {exc}")
