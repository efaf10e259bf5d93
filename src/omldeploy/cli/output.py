"""All terminal printing: plain text that reads well in a terminal and in a CI log."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from omldeploy.inventory.problems import Problem
from omldeploy.inventory.schema import SECRET_KEYS
from omldeploy.tables import format_table

_SECRETISH = re.compile(r"pass|secret|token", re.I)


class Console:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = self.err.isatty() and not os.environ.get("NO_COLOR")

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def say(self, text: str = "") -> None:
        # flushed: progress of long work (a drain, a pull) must show live through a pipe (tee, CI logs)
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        print(self._paint(f"omldeploy: {text}", "31"), file=self.err)

    def warn(self, text: str) -> None:
        print(self._paint(f"warning: {text}", "33"), file=self.err, flush=True)

    def problems(self, problems: Iterable[Problem]) -> None:
        items = list(problems)
        errors = [p for p in items if p.severity == "error"]
        for p in items:
            line = p.format()
            print(self._paint(line, "31" if p.severity == "error" else "33"), file=self.err)
        if errors:
            print(f"{len(errors)} error(s): nothing was changed.", file=self.err)

    def json(self, data: Any) -> None:
        """The one JSON document of a `--json` verb: stdout only, nothing else is written there."""
        print(json.dumps(data, indent=2, sort_keys=False), file=self.out)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "  ") -> None:
        for line in format_table(headers, rows, indent):
            self.say(line)


def problem_data(p: Problem) -> dict[str, Any]:
    """A problem as JSON. `found` is withheld for secret keys: a JSON report ends up in CI logs."""
    leaf = p.key.rsplit(".", 1)[-1]
    secret = leaf in SECRET_KEYS or bool(_SECRETISH.search(leaf))
    return {"file": p.file, "line": p.line, "key": p.key, "message": p.message,
            "found": "(secret, not shown)" if secret and p.found is not None else p.found,
            "allowed": p.allowed, "severity": p.severity}
