"""The backups in a bucket, grouped by id, from a listing of `backup/` plus the manifests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from omldeploy.backup import layout


@dataclass
class Entry:
    id: str
    kind: str  # omldeploy (manifest), seed (dump without manifest: seed backup or migration), incomplete
    created_epoch: int | None
    size: int
    objects: int
    dump_key: str | None
    verified: str  # "yes", "FAILED", "no"
    verified_epoch: int | None = None
    verify_detail: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    server_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build(objects: list[dict[str, Any]], documents: dict[str, Any]) -> list[Entry]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        backup_id = layout.id_of(o["key"])
        if backup_id is not None:
            by_id.setdefault(backup_id, []).append(o)
    out = []
    for backup_id, objs in by_id.items():
        manifest = documents.get(layout.manifest_key(backup_id))
        verify = documents.get(layout.verify_key(backup_id))
        dumps = [o["key"] for o in objs if layout.DUMP_RE.match(o["key"])]
        data = [o for o in objs if not layout.DOC_RE.match(o["key"])]
        if isinstance(manifest, dict) and "objects" in manifest:
            kind = "omldeploy"
            created = manifest.get("created_epoch")
            size = int(manifest.get("total_bytes") or 0)
            count = len(manifest["objects"])
            versions = dict(manifest.get("versions") or {})
            server = str((manifest.get("postgresql") or {}).get("server_version", ""))
        else:
            kind = "seed" if dumps else "incomplete"
            created = layout.epoch_of(backup_id)
            size = sum(int(o["size"]) for o in data)
            count = len(data)
            versions, server = {}, ""
        verified, v_epoch, detail = "no", None, ""
        if isinstance(verify, dict) and "ok" in verify:
            verified = "yes" if verify["ok"] else "FAILED"
            v_epoch = verify.get("epoch")
            bad = [r for r in verify.get("results", []) if not r.get("ok")]
            detail = "; ".join(f"{r.get('key')}: {r.get('error')}" for r in bad)
        out.append(Entry(id=backup_id, kind=kind, created_epoch=created, size=size, objects=count,
                         dump_key=dumps[0] if dumps else None, verified=verified, verified_epoch=v_epoch,
                         verify_detail=detail, versions=versions, server_version=server))
    out.sort(key=lambda e: (e.created_epoch or 0, e.id))
    return out


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 2 * 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
