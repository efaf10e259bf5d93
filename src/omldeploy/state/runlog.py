"""Run logs under `<tenant>/.omldeploy/logs/` (0600), with every known secret (in any of its encoded
forms) replaced by ***."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from omldeploy.inventory.state_errors import StateError, writing
from omldeploy.state.secret_forms import encoded_forms


class Redactor:
    """Replaces every known secret, raw or encoded (URL, JSON, shell, base64: state/secret_forms.py)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= encoded_forms(str(secret))
        values = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern else text


class RunLog:
    def __init__(self, folder: Path, action: str, redact: Redactor) -> None:
        logs = folder / ".omldeploy" / "logs"
        self.path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{action}.log"
        with writing(self.path, "the run log"):
            logs.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh: TextIO = os.fdopen(fd, "a", encoding="utf-8")
        self._redact = redact
        self.broken = False

    def write(self, text: str) -> None:
        """A log that fails later (the disk filled up during the run) is reported once and dropped: the
        operation on the hosts is not cut half-way for the controller's own log."""
        if self.broken:
            return
        try:
            with writing(self.path, "the run log"):
                self._fh.write(self._redact(text if text.endswith("\n") else text + "\n"))
                self._fh.flush()
        except StateError as exc:
            self.broken = True
            print(f"omldeploy: {exc}; the run goes on without its log", file=sys.stderr)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the buffered tail of a log on a full disk
            self._fh.close()
