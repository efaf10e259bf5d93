"""Which backups `backups prune` removes. Only omldeploy backups (with a manifest) are ever pruned:
the seed's backups and hand-made migration dumps are left alone, and so is the newest backup."""

from __future__ import annotations

from typing import Any

from omldeploy.backup import layout
from omldeploy.backup.catalog import Entry


def select(entries: list[Entry], *, keep: int | None, keep_days: float | None, now: float) -> list[Entry]:
    """Backups to delete: beyond the `keep` newest, and/or older than `keep_days`. When both are given,
    a backup goes only if both rules let it go. Incomplete backups (no manifest, no dump: an
    interrupted run) older than a day are always candidates."""
    if keep is None and keep_days is None:
        raise ValueError("give keep and/or keep_days")
    if keep is not None and keep < 1:
        raise ValueError("keep must be at least 1")
    ours = sorted((e for e in entries if e.kind == "omldeploy"), key=lambda e: (e.created_epoch or 0, e.id),
                  reverse=True)
    doomed = []
    for i, e in enumerate(ours):
        if i == 0:
            continue  # never the newest
        by_count = keep is not None and i >= keep
        by_age = keep_days is not None and e.created_epoch is not None and \
            now - e.created_epoch > keep_days * 86400
        if keep is not None and keep_days is not None:
            go = by_count and by_age
        else:
            go = by_count or by_age
        if go:
            doomed.append(e)
    for e in entries:
        if e.kind == "incomplete" and e.created_epoch is not None and now - e.created_epoch > 86400:
            doomed.append(e)
    return sorted(doomed, key=lambda e: (e.created_epoch or 0, e.id))


def object_keys(objects: list[dict[str, Any]], ids: set[str]) -> list[str]:
    """Every bucket key of the backups `ids`, in deletion order: the manifest first, so a half-deleted
    backup is "incomplete" and never offered for restore."""
    keys = [o["key"] for o in objects if layout.id_of(o["key"]) in ids]
    return sorted(keys, key=lambda k: (0 if k.endswith("/manifest.json") else 1, k))
