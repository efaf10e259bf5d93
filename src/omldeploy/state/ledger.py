"""Append-only record of every operation on a tenant (who, when, action, versions, outcome, duration).

`rollback` reads it to find the versions of earlier successful runs.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Record:
    action: str
    outcome: str  # ok, failed, check
    started: str
    duration: float
    versions: dict[str, str]
    user: str = field(default_factory=getpass.getuser)
    hosts: list[str] = field(default_factory=list)
    changed: int = 0
    restarted: list[str] = field(default_factory=list)
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def ledger_path(folder: Path) -> Path:
    return folder / ".omldeploy" / "ledger.jsonl"


def append(folder: Path, record: Record) -> None:
    path = ledger_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(record), sort_keys=True) + "\n")


def read(folder: Path) -> list[Record]:
    path = ledger_path(folder)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            out.append(Record(**data))
    return out


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
