"""Live progress of a long host-side transfer: the module writes a small JSON file on the host,
a thread here reads it over SSH once a second and draws a bar (a line every 15 s when not a TTY).
Best effort: if the file cannot be read, the operation goes on without a bar."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from omldeploy.apply.ssh import ssh_argv
from omldeploy.inventory.model import Host


class Poller:
    def __init__(self, host: Host, tenant: str, draw: Callable[[dict[str, Any]], None]) -> None:
        self.host, self.draw = host, draw
        self.path = f"/var/lib/omldeploy/{tenant}/backup-progress.json"
        self.stop_event = threading.Event()
        self.control = tempfile.mkdtemp(prefix="omldeploy-ssh-")
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)
        subprocess.run(["ssh", "-o", f"ControlPath={self.control}/%C", "-O", "exit", "x"], capture_output=True,
                       check=False, timeout=10)
        import shutil

        shutil.rmtree(self.control, ignore_errors=True)

    def _run(self) -> None:
        argv = [*ssh_argv(self.host, self.control), f"cat {self.path} 2>/dev/null || true"]
        while not self.stop_event.wait(1.0):
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
                data = json.loads(proc.stdout) if proc.stdout.strip() else None
            except (subprocess.TimeoutExpired, ValueError, OSError):
                data = None
            if isinstance(data, dict):
                self.draw(data)


class Bar:
    """Draws progress records as a bar on a TTY (stderr), else as a line every 15 s. Retries of transient
    bucket failures (`notes`, cumulative on the host) are printed as lines as they happen; `shown` says
    how many, so the caller prints only the rest from the step's report."""

    def __init__(self, host: str, line: Callable[[str], None], tty: bool | None = None) -> None:
        self.host, self.line = host, line
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.last_line = 0.0
        self.drawn = False
        self.shown = 0

    def __call__(self, rec: dict[str, Any]) -> None:
        notes, total = rec.get("notes") or [], int(rec.get("notes_total") or 0)
        if total > self.shown and isinstance(notes, list):
            if self.tty and self.drawn:
                sys.stderr.write("\r" + " " * 100 + "\r")
            for text in notes[len(notes) - (total - self.shown):] if total - self.shown <= len(notes) else notes:
                self.line(f"  {self.host}: {text}")
            self.shown = total
        done, total, secs = int(rec.get("bytes", 0)), int(rec.get("total", 0)), float(rec.get("seconds", 0))
        rate = done / secs / 1e6 if secs > 0 else 0.0
        text = f"{self.host} {rec.get('phase', '')}: {done / 1e6:,.1f} MB"
        if total:
            pct = min(100.0, 100.0 * done / total)
            filled = int(pct / 5)
            text = f"{self.host} {rec.get('phase', '')} [{'#' * filled}{'.' * (20 - filled)}] {pct:5.1f}% " \
                   f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB"
        text += f"  {rate:.1f} MB/s  {secs:.0f}s"
        if self.tty:
            sys.stderr.write("\r" + text[:150].ljust(100))
            sys.stderr.flush()
            self.drawn = True
        elif secs >= 15 and time.monotonic() - self.last_line >= 15:
            self.last_line = time.monotonic()
            self.line(text)

    def finish(self) -> None:
        if self.tty and self.drawn:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()
