"""Secret material of a tenant must be private to its owner, whatever put it on disk.

A `git clone` (or an unpack, a copy with another umask) of the tenants repository writes every file
0644: `secrets.yml`, the CA and server keys, a custom `key.pem`, the inventory with its passwords and
the ledger become readable by every user of the controller. On every load the modes are checked and
tightened (group and other bits removed), with one line on stderr per file saying so.

Tightening rather than refusing: a fresh clone is the normal way to get the tenants on a new controller,
and refusing would make each first command fail on a fact that `chmod` alone fixes, without the
operator learning anything the warning does not tell. Removing permissions from the owner's own files
is always safe. When the mode cannot be changed (a file of another user, a read-only checkout) the
command stops with the exact `chmod` to run: running on with world-readable secrets is not an option.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from omldeploy.inventory.state_errors import StateError

#: Relative to the tenant folder: files that hold secrets (or what was derived from them).
SECRET_FILES = ("inventory.yml", "inventory.yml.bak", "key.pem", "vault.yml", ".omldeploy/secrets.yml",
                ".omldeploy/ledger.jsonl", ".omldeploy/rotation.yml")
SECRET_GLOBS = (".omldeploy/pki/*.key", ".omldeploy/logs/*.log")
PRIVATE_DIRS = (".omldeploy", ".omldeploy/pki", ".omldeploy/logs")


def secure(folder: Path, say: Callable[[str], None] | None = None) -> list[Path]:
    """Tighten every secret file (0600 at most) and private folder (0700 at most) of the tenant;
    returns the paths changed. Raises StateError when a mode cannot be changed."""
    say = say or (lambda text: print(text, file=sys.stderr))
    paths = [folder / rel for rel in SECRET_FILES]
    for pattern in SECRET_GLOBS:
        paths.extend(sorted(folder.glob(pattern)))
    paths.extend(folder / rel for rel in PRIVATE_DIRS)
    changed = []
    for path in paths:
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
            continue  # a symlink's target is the operator's choice; it is not followed
        old = stat.S_IMODE(st.st_mode)
        new = old & 0o700
        try:
            os.chmod(path, new)
        except OSError as exc:
            cmd = f"chmod go-rwx {shlex.quote(str(path))}"
            raise StateError(path, f"holds secrets but is mode {old:04o} (readable by other users) and its mode "
                             f"cannot be changed: {exc.strerror}", fix=f"run `{cmd}` as its owner") from None
        say(f"omldeploy: {path} was mode {old:04o}, readable by other users; tightened to {new:04o} "
            "(it holds secrets; a git clone writes files 0644)")
        changed.append(path)
    return changed
