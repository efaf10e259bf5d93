"""Tenant state that cannot be read or written: a clear message naming the file, exit 2, never 70.

The state under `instances/<tenant>/` (generated secrets, ledger, run logs, lock, the inventory itself)
can be damaged (a crash, a bad merge, an edit) or unwritable (a full disk, a read-only checkout, a
folder of another user). That is the operator's to fix, not a bug: `StateError` is an
`InventoryError`, so every command and `tenant list` already report it as input (exit 2) with the
file, what is wrong and what to do.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omldeploy.inventory.problems import InventoryError, Problems

#: Write failures that come from the place, not from omldeploy.
PLACE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EIO: "input/output error",
}


class StateError(InventoryError):
    def __init__(self, path: Path, message: str, fix: str | None = None) -> None:
        problems = Problems(path)
        problems.add("(file)", message, allowed=fix)
        super().__init__(problems.items)
        self.path = path
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" + (f"; {self.fix}" if self.fix else "")


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn a write failure of the place (full, read-only, not ours) into a StateError naming `path`."""
    try:
        yield
    except OSError as exc:
        reason = PLACE_ERRNOS.get(exc.errno or 0)
        if reason is None:
            raise
        where = Path(exc.filename) if exc.filename else path
        raise StateError(where, f"cannot write {what}: {reason} ({errno.errorcode.get(exc.errno or 0, '?')})",
                         fix=f"make {where.parent} writable with free space, then run the command again") from None
