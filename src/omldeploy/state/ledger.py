"""Append-only record of every operation on a tenant (who, when, action, versions, outcome, duration).

`rollback` reads it to find the versions of earlier successful runs. Records are redacted on the way in;
a damaged line is skipped on the way out (never a crash).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omldeploy.inventory.state_errors import writing


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


def append(folder: Path, record: Record, *, redact: Callable[[str], str]) -> None:
    """Append one record; `redact` (the tenant's redactor) is required so that no writer can store a
    secret: `detail` often quotes a failing command's output, and `extra` the steps' results."""
    data = _redacted(asdict(record), redact)
    path = ledger_path(folder)
    line = (json.dumps(data, sort_keys=True) + "\n").encode("utf-8")
    with writing(path, "the ledger"):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)  # one write: a line is appended whole or (disk full) not at all
        finally:
            os.close(fd)


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v, redact) for v in value]
    return value


@dataclass(frozen=True)
class Damaged:
    """A ledger line that could not be read (truncated by a crash, edited by hand, garbled)."""

    line: int
    reason: str


def read(folder: Path, damaged: list[Damaged] | None = None) -> list[Record]:
    """Every readable record, in order. A damaged line is skipped (and listed in `damaged` when given):
    a line is reported on stderr when `damaged` is not given. One truncated line must not stop
    `rollback`, `history` or the next `install` from recording."""
    path = ledger_path(folder)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            record = Record(**data)
            if not isinstance(record.versions, dict) or not isinstance(record.action, str) \
                    or not isinstance(record.started, str):
                raise ValueError("fields of the wrong type")
        except (ValueError, TypeError) as exc:
            found = Damaged(number, (str(exc).splitlines() or ["unreadable"])[0][:120])
            if damaged is not None:
                damaged.append(found)
            else:
                print(f"omldeploy: {path}: line {found.line} is damaged ({found.reason}); skipped", file=sys.stderr)
            continue
        out.append(record)
    return out


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
