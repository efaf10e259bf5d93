"""What the dashboard shows: the last fleet survey, refreshed in the background, and recent operations.

A survey over hundreds of tenants reads every host and takes minutes, so a page never waits for one: it
shows the last complete survey with its time, and while the next one runs, how far it got. The ledgers
are read at each survey too (a few KB per tenant, no SSH).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omldeploy.ops import fleet as fleet_op
from omldeploy.state import ledger

RECENT = 30  # operations over the whole fleet on the front page
PER_TENANT = 12  # operations on a tenant's page


@dataclass
class Snapshot:
    rows: list[fleet_op.Row] = field(default_factory=list)
    taken: float | None = None  # epoch of the survey's end; None before the first one
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    recent: list[tuple[str, ledger.Record]] = field(default_factory=list)  # (tenant, record), newest first

    def row(self, name: str) -> fleet_op.Row | None:
        return next((r for r in self.rows if r.tenant == name), None)


class Fleet:
    """The current snapshot, and a thread that replaces it every `refresh` seconds."""

    def __init__(self, root: Path, opts: fleet_op.Options, refresh: float = 300.0) -> None:
        self.root, self.opts, self.refresh = root, opts, refresh
        self.snapshot = Snapshot()
        self.progress: tuple[int, int] | None = None  # (done, total) of the survey running now
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def survey_once(self) -> Snapshot:
        t0 = time.monotonic()
        self.progress = (0, len(fleet_op.tenant_folders(self.root, self.opts.pattern)))

        def done(_row: fleet_op.Row, n: int, total: int) -> None:
            self.progress = (n, total)

        rows = fleet_op.survey(self.root, self.opts, done)
        snap = Snapshot(rows=rows, taken=time.time(), seconds=round(time.monotonic() - t0, 1),
                        summary=fleet_op.summary(rows), recent=recent_operations(self.root, rows))
        with self._lock:
            self.snapshot = snap
        self.progress = None
        return snap

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.survey_once()
                except Exception:  # a failed survey keeps the last one on the page; the next one retries
                    self.progress = None
                self._stop.wait(self.refresh)

        self._thread = threading.Thread(target=loop, name="fleet-survey", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def current(self) -> Snapshot:
        with self._lock:
            return self.snapshot


def recent_operations(root: Path, rows: list[fleet_op.Row], limit: int = RECENT) -> list[tuple[str, ledger.Record]]:
    """The newest operations across the fleet (ledger records are redacted when written)."""
    out: list[tuple[str, ledger.Record]] = []
    for r in rows:
        out += [(r.tenant, rec) for rec in ledger.read(root / r.tenant)[-limit:]]
    out.sort(key=lambda x: x[1].started, reverse=True)
    return out[:limit]


def tenant_operations(root: Path, name: str, limit: int = PER_TENANT) -> list[ledger.Record]:
    return list(reversed(ledger.read(root / name)[-limit:]))
