"""Where the sandbox keeps its caches and the state of each named sandbox.

Everything lives under one root so that `down` and a human can find all of it, and so that the
caches (which take minutes to build) survive across sandboxes while the state does not.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SandboxError

#: Root of all sandbox files; overridable for experiments, never needed by tests.
ROOT = Path(os.environ.get("OMLDEPLOY_SANDBOX_ROOT", "/var/tmp/omldeploy-sandbox"))
CACHE = ROOT / "cache"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_RESERVED = {"cache"}


def check_name(name: str) -> str:
    """Validate a sandbox name (it becomes part of directory and namespace names)."""
    if not _NAME_RE.match(name) or name in _RESERVED:
        raise SandboxError(
            f"invalid sandbox name {name!r}: use 1-20 characters a-z, 0-9 and '-', starting with a letter"
            " (and not 'cache')"
        )
    return name


def state_dir(name: str) -> Path:
    """Directory holding everything one named sandbox created (removed by `down`)."""
    return ROOT / check_name(name)


def existing_names() -> list[str]:
    """Names of the sandboxes that have a state directory (running or left over after a crash)."""
    if not ROOT.is_dir():
        return []
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in _RESERVED
                  and (p / "state.json").exists())


@contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Serialise work on a shared resource (a cache entry, subnet allocation) between processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    lock_path = CACHE / f".{name}.lock"
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
