"""Where a host module's time goes: each timed piece of work becomes one row of the report's `timings`.

The controller measures a step's wall time (SSH, Ansible's start-up and the module together); the rows
say how much of it the module spent where (file comparison, each image pull with its bytes, each unit's
stop/start, each health wait, hooks, daemon-reload), and `seconds` is the module's own total, so the
rest is the cost of reaching the host (issue 14: nobody could say where an install's time went).
Only the Python standard library is used on the host.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


class Clock:
    """Started when the module starts; `rows` go into the report as `timings`, `total()` as `seconds`."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.rows: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def timed(self, phase: str, what: str = "", **extra: Any) -> Iterator[dict[str, Any]]:
        """Time the block as one row; the caller may add fields (e.g. `bytes`) to the yielded row. A block
        that raises still records its time (a failed pull shows how long it tried)."""
        row: dict[str, Any] = {"phase": phase, "what": what, **extra}
        start = time.monotonic()
        try:
            yield row
        finally:
            row["seconds"] = round(time.monotonic() - start, 3)
            self.rows.append(row)

    def add(self, phase: str, what: str, seconds: float, **extra: Any) -> None:
        self.rows.append({"phase": phase, "what": what, "seconds": round(seconds, 3), **extra})

    def total(self) -> float:
        return round(time.monotonic() - self.t0, 3)
