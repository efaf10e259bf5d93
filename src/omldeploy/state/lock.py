"""One operation per tenant at a time; different tenants run concurrently.

An advisory `flock` on `<tenant>/.omldeploy/lock`: released by the kernel if the process dies, so a
crash never leaves a stale lock. The holder writes who/what/when into the file for the refusal message.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from omldeploy.inventory.state_errors import writing


class TenantBusy(Exception):
    def __init__(self, tenant: str, holder: dict[str, object]) -> None:
        who = f"{holder.get('user', '?')}@{holder.get('host', '?')} (pid {holder.get('pid', '?')})"
        since = holder.get("since", "?")
        super().__init__(f"tenant {tenant} is busy: '{holder.get('action', '?')}' run by {who} since {since}")
        self.holder = holder


_HELD: set[Path] = set()  # locks this process holds: nested operations (upgrade → backup) re-enter


@contextmanager
def tenant_lock(folder: Path, tenant: str, action: str) -> Iterator[None]:
    path = (folder / ".omldeploy" / "lock").resolve()
    if path in _HELD:
        yield
        return
    with writing(path, "the tenant lock"):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            try:
                holder = json.loads(raw)
            except ValueError:
                holder = {}
            raise TenantBusy(tenant, holder) from None
        info = {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(), "action": action,
                "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD.add(path)
        try:
            yield
        finally:
            _HELD.discard(path)
    finally:
        with suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def holder(folder: Path) -> dict[str, object] | None:
    """Who holds the tenant's lock now (action, user, host, pid, since), or None when nobody does.

    For readers (`fleet status`). It takes no lock itself, not even a shared one for an instant: that
    would make an `install` starting at the same moment fail as "busy". The kernel's table of held
    locks (/proc/locks) is read for the file's inode instead; the file is never created here."""
    path = folder / ".omldeploy" / "lock"
    try:
        st = os.stat(path, follow_symlinks=False)
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    held = any(len(f) > 5 and f[1] == "FLOCK" and f[5] == dev for f in (line.split() for line in table.splitlines()))
    if not held:
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8", errors="replace") or "{}")
    except (OSError, ValueError):
        found = {}
    return found if isinstance(found, dict) else {}
