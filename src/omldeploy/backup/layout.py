"""Bucket layout, compatible with the seed's:

    backup/pgsql-backup-<id>.dump        PostgreSQL custom format (pg_dump -Fc), the default
    backup/pgsql-backup-<id>.sql         plain SQL (--format plain, the seed's backups, CentOS-7 migrations)
    backup/asterisk/<id>/<file>          /etc/asterisk/custom of the voice host
    backup/media/<id>/<path>             the app's media_root/ (it reads media from the bucket) at backup time
    backup/<id>/manifest.json            what the backup holds (sizes, sha256, versions); written last
    backup/<id>/verify.json              outcome of the last `omldeploy backups verify`

`<id>` is the epoch second the backup started (as the seed's `date +%s`), or any name an operator
gave a hand-made (migration) backup.
"""

from __future__ import annotations

import re
import time

ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")  # as inventory/rules.py checks restore_file_timestamp
DUMP_RE = re.compile(r"^backup/pgsql-backup-(?P<id>[^/]+)\.(?P<ext>sql|dump)$")
FILE_RE = re.compile(r"^backup/asterisk/(?P<id>[^/]+)/.+$")
MEDIA_RE = re.compile(r"^backup/media/(?P<id>[^/]+)/.+$")
#: where the app keeps its media: every release renders S3_STORAGE_ENABLED=true and the omnileads
#: component mounts no media volume, so the app reads and writes `media_root/` in the bucket itself
MEDIA_SOURCE = "media_root/"
DOC_RE = re.compile(r"^backup/(?P<id>[^/]+)/(?P<doc>manifest|verify)\.json$")
FORMATS = {"custom": "dump", "plain": "sql"}


def new_id(now: float | None = None) -> str:
    return str(int(time.time() if now is None else now))


def valid_id(value: str) -> bool:
    return bool(ID_RE.match(value)) and value not in (".", "..")


def dump_key(backup_id: str, fmt: str = "custom") -> str:
    return f"backup/pgsql-backup-{backup_id}.{FORMATS[fmt]}"


def files_prefix(backup_id: str) -> str:
    return f"backup/asterisk/{backup_id}/"


def media_prefix(backup_id: str) -> str:
    return f"backup/media/{backup_id}/"


def manifest_key(backup_id: str) -> str:
    return f"backup/{backup_id}/manifest.json"


def verify_key(backup_id: str) -> str:
    return f"backup/{backup_id}/verify.json"


def id_of(key: str) -> str | None:
    """The backup id an object belongs to, or None for objects outside the layout."""
    for pattern in (DUMP_RE, FILE_RE, MEDIA_RE, DOC_RE):
        m = pattern.match(key)
        if m:
            return m.group("id")
    return None


def epoch_of(backup_id: str) -> int | None:
    """Ids made by omldeploy or the seed are epoch seconds; names are not."""
    if backup_id.isdigit() and 9 <= len(backup_id) <= 11:
        return int(backup_id)
    return None
