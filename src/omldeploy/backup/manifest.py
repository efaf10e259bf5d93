"""The per-backup manifest (`backup/<id>/manifest.json`), written after every object is uploaded.

A backup without a manifest is either the seed's (or a hand-made migration dump) or an interrupted
one: the catalog tells them apart by whether the id has a dump at all.
"""

from __future__ import annotations

import time
from typing import Any

from omldeploy import __version__

FORMAT = "omldeploy-backup/1"


def build(*, backup_id: str, tenant: str, layout: str, versions: dict[str, str], images: dict[str, list[str]],
          db: dict[str, Any], objects: list[dict[str, Any]], started: float, duration: float,
          dump_format: str, db_mode: str, files_host: str | None, files_dir: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "id": backup_id,
        "tenant": tenant,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "created_epoch": int(started),
        "tool": {"name": "omldeploy", "version": __version__},
        "layout": layout,
        "versions": dict(sorted(versions.items())),
        "images": images,
        "postgresql": {
            "server_version": db.get("server_version", ""),
            "server_version_num": db.get("server_version_num", 0),
            "pg_dump": db.get("pg_dump_version", ""),
            "database": db.get("database", ""),
            "dump_format": dump_format,
            "access": db_mode,
            "dump_seconds": db.get("dump_seconds"),
        },
        "asterisk": {"host": files_host, "dir": files_dir,
                     "files": sum(1 for o in objects if o.get("kind") == "file")},
        "media": {"source": "media_root/", "files": sum(1 for o in objects if o.get("kind") == "media"),
                  "bytes": sum(int(o["size"]) for o in objects if o.get("kind") == "media")},
        "objects": objects,
        "total_bytes": sum(int(o["size"]) for o in objects),
        "duration_seconds": round(duration, 2),
    }


def problems(doc: Any) -> list[str]:
    """What makes a downloaded manifest unusable (empty list = fine)."""
    if not isinstance(doc, dict):
        return ["the manifest is not a JSON object"]
    out = []
    if doc.get("format") != FORMAT:
        out.append(f"unknown manifest format {doc.get('format')!r} (expected {FORMAT})")
    objects = doc.get("objects")
    if not isinstance(objects, list) or not objects:
        out.append("the manifest lists no objects")
    else:
        for o in objects:
            if not isinstance(o, dict) or not {"key", "size", "sha256"} <= set(o):
                out.append(f"malformed object entry {o!r}")
    return out


def dump_object(doc: dict[str, Any]) -> dict[str, Any] | None:
    for o in doc.get("objects", []):
        if str(o.get("kind", "")).startswith("dump"):
            return dict(o)
    return None


def file_objects(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(o) for o in doc.get("objects", []) if o.get("kind") == "file"]


def media_objects(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The app's media_root/ objects a backup holds (none in seed backups and older manifests)."""
    return [dict(o) for o in doc.get("objects", []) if o.get("kind") == "media"]


def server_major(doc: dict[str, Any]) -> int | None:
    num = (doc.get("postgresql") or {}).get("server_version_num")
    return int(num) // 10000 if num else None
