"""Problems found while loading an inventory, and how they are shown.

Validation never stops at the first problem: every rule appends to a `Problems` list so an operator
fixes a whole inventory in one pass. A problem always names the file, the key and, when it knows them,
the line, what was found and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from omldeploy.inventory.schema import SECRET_KEYS


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in an inventory."""

    file: str
    key: str
    message: str
    line: int | None = None
    found: str | None = None
    allowed: str | None = None
    severity: str = "error"

    def format(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.severity}: {self.key}: {self.message}"
        if self.found is not None:
            text += f" (found: {self.found})"
        if self.allowed is not None:
            text += f" (allowed: {self.allowed})"
        return text


@dataclass
class Problems:
    """Collects problems for one inventory file."""

    file: Path
    items: list[Problem] = field(default_factory=list)

    def add(
        self,
        key: str,
        message: str,
        *,
        line: int | None = None,
        found: object = None,
        allowed: str | None = None,
        severity: str = "error",
    ) -> None:
        shown = None if found is None else _show(found)
        if shown is not None and secret_key(key):
            shown = "(secret, not shown)"
        self.items.append(Problem(str(self.file), key, message, line, shown, allowed, severity))

    def warn(self, key: str, message: str, *, line: int | None = None, found: object = None) -> None:
        self.add(key, message, line=line, found=found, severity="warning")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]


_USERINFO = re.compile(r"//[^/@\s]*@")


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    text = _USERINFO.sub("//***@", text)  # credentials in a URL are never shown
    return text if len(text) <= 80 else text[:77] + "..."


def secret_key(key: str) -> bool:
    """Whether a problem's key (`name` or `host.name`) holds a secret, whose value is never repeated."""
    name = key.rsplit(".", 1)[-1]
    return name in SECRET_KEYS or any(word in name.lower() for word in ("password", "secret", "_pass"))


class InventoryError(Exception):
    """Raised when an inventory has errors; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in inventory")
        self.problems = problems
