"""All terminal printing: plain text that reads well in a terminal and in a CI log."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from omldeploy.inventory.problems import Problem
from omldeploy.tables import format_table


class Console:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = self.err.isatty() and not os.environ.get("NO_COLOR")

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def error(self, text: str) -> None:
        print(self._paint(f"omldeploy: {text}", "31"), file=self.err)

    def warn(self, text: str) -> None:
        print(self._paint(f"warning: {text}", "33"), file=self.err)

    def problems(self, problems: Iterable[Problem]) -> None:
        items = list(problems)
        errors = [p for p in items if p.severity == "error"]
        for p in items:
            line = p.format()
            print(self._paint(line, "31" if p.severity == "error" else "33"), file=self.err)
        if errors:
            print(f"{len(errors)} error(s): nothing was changed.", file=self.err)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "  ") -> None:
        for line in format_table(headers, rows, indent):
            self.say(line)
