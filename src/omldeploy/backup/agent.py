"""The scheduled backup, run on the tenant's database host by a systemd timer (`backup_schedule`).

It does what `omldeploy backup` does, with the same code: the host module's dump-and-upload
(`omldeploy_backup.py`) and this package's id, manifest, catalog and retention modules, which are
shipped beside it with only the standard library. The configuration file (0600, it holds the bucket
keys) is rendered by `render/backup_schedule.py`. Exit status non-zero on failure, so the unit shows failed
in `systemctl --failed` and in the journal; a failed run leaves no manifest, so it is never offered for
restore and `backups prune` removes its leftovers.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from typing import Any

from omldeploy.backup import catalog, layout, manifest, retention

CUSTOM_DIR = "/etc/asterisk/custom"


def say(text: str) -> None:
    print(text, flush=True)


def run(cfg: dict[str, Any], host_ops: Any, now: float | None = None) -> str:
    """One scheduled backup; returns its id. `host_ops` is the host module (omldeploy_backup)."""
    base = {"tenant": cfg["tenant"], "s3": cfg["s3"]}
    t0 = time.time() if now is None else now
    bid = layout.new_id(t0)
    while True:  # a manual `omldeploy backup` may have taken this second
        existing = host_ops.op_inspect({**base, "ts": bid})
        if not (existing.get("manifest") or existing.get("dump")):
            break
        t0 += 1
        bid = layout.new_id(t0)
    fmt = cfg.get("format", "custom")
    say(f"backup {bid} of tenant {cfg['tenant']}: database '{cfg['db']['database']}', {fmt} format"
        + (f", Asterisk files from {CUSTOM_DIR}" if cfg.get("files") else ", no Asterisk files on this host"))
    call: dict[str, Any] = {**base, "db": cfg["db"], "format": fmt, "dump_key": layout.dump_key(bid, fmt),
                            "compress": int(cfg.get("compress", 1))}
    if cfg.get("media", True):
        call["media"] = {"source": layout.MEDIA_SOURCE, "prefix": layout.media_prefix(bid)}
    if cfg.get("files"):
        call["files"] = {"dir": CUSTOM_DIR, "prefix": layout.files_prefix(bid)}
    rep = host_ops.op_backup(call)
    objects = rep.get("objects", [])
    doc = manifest.build(backup_id=bid, tenant=cfg["tenant"], layout=cfg["layout"], versions=cfg["versions"],
                         images=cfg["images"], db=rep, objects=objects, started=t0, duration=time.time() - t0,
                         dump_format=fmt, db_mode=cfg["db"]["mode"],
                         files_host=cfg["host"] if cfg.get("files") else None, files_dir=CUSTOM_DIR)
    doc["scheduled"] = {"host": cfg["host"], "schedule": cfg["schedule"]}
    if cfg.get("files_elsewhere"):
        doc["asterisk"]["note"] = (f"the Asterisk files are on {cfg['files_elsewhere']}: scheduled backups hold the "
                                   "database only; `omldeploy backup` from the controller includes them")
    host_ops.op_put_json({**base, "key": layout.manifest_key(bid), "document": doc})
    say(f"backup {bid} done: {len(objects)} object(s), {catalog.human_size(doc['total_bytes'])} "
        f"in {doc['duration_seconds']}s")
    prune(cfg, host_ops)
    return bid


def prune(cfg: dict[str, Any], host_ops: Any) -> None:
    keep, days = cfg.get("keep"), cfg.get("keep_days")
    if keep is None and days is None:
        return
    base = {"tenant": cfg["tenant"], "s3": cfg["s3"]}
    listing = host_ops.op_catalog(base)
    entries = catalog.build(listing.get("objects", []), listing.get("documents", {}))
    doomed = retention.select(entries, keep=keep, keep_days=days, now=time.time())
    if not doomed:
        say(f"retention (keep={keep}, keep_days={days}): nothing to delete")
        return
    ids = {e.id for e in doomed}
    host_ops.op_delete({**base, "keys": retention.object_keys(listing.get("objects", []), ids)})
    say(f"retention (keep={keep}, keep_days={days}): deleted {', '.join(sorted(ids))}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 -m omldeploy.backup.agent CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import omldeploy_backup as host_ops  # type: ignore[import-not-found,unused-ignore]  # shipped beside us

    host_ops.ECHO = say  # retries of transient bucket failures go to the journal as they happen

    lock_path = f"/run/omldeploy-backup-{cfg['tenant']}.lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another scheduled backup of tenant {cfg['tenant']} is running", file=sys.stderr)
            return 1
        try:
            run(cfg, host_ops)
        except (host_ops.OpError, OSError, ValueError) as exc:
            print(f"FAILED: scheduled backup of tenant {cfg['tenant']}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
