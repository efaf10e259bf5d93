"""File writes by root on a host that never follow a symbolic link (issue 12, M6).

Some folders omldeploy writes into are also writable from inside containers (`/etc/asterisk/custom`,
the keepalived state folder, volumes a compromised image could reach). A container that plants a
symlink there (`key.pem -> /etc/shadow`, or `custom -> /etc/systemd/system`) must not make host root
write, chmod or chown the file it points to. So every write here:

- opens each folder of the path from `/` one by one with O_NOFOLLOW|O_DIRECTORY (a symlinked folder
  anywhere on the way is refused, naming it; missing folders are created the same way);
- refuses a target that is itself a symlink (or not a regular file);
- writes a new file with a random name in the target folder (O_CREAT|O_EXCL|O_NOFOLLOW, the way
  mkstemp does, but relative to the folder already opened, so the folder cannot be swapped meanwhile),
  sets its mode and owner through the file descriptor, then renames it over the target in that folder.

Only the Python standard library is used (this file runs on the hosts, inside Ansible modules).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A write was refused because a symlink (or a non-folder) is on the way. An OSError, so modules
    that report OSErrors report this one too, with its message."""


def _parts(path: str) -> list[str]:
    if not os.path.isabs(path):
        raise UnsafePath(f"{path}: not an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{path}: '..' is not allowed in a path written by omldeploy")
    return parts


def _refuse(prefix: str, path: str) -> UnsafePath:
    try:
        st = os.lstat(prefix)
    except OSError:
        return UnsafePath(f"{prefix} changed while {path} was being written; refusing to write through it")
    what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a folder"
    return UnsafePath(f"{prefix} is {what}; refusing to write {path} through it (a container or user may have "
                      f"planted it: check it and remove it, then re-run)")


def open_dir(path: str, create_mode: int | None = None) -> int:
    """A descriptor of folder `path`, opened without following any symlink on the way. With
    `create_mode`, missing folders are created (the last one with that mode; the ones above 0755)."""
    parts = _parts(path)
    fd = os.open("/", _DIR_FLAGS)
    prefix = ""
    try:
        for i, part in enumerate(parts):
            prefix += "/" + part
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                mode = create_mode if i == len(parts) - 1 else 0o755
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile: opened (and checked) below
                else:
                    if i == len(parts) - 1:
                        nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                        os.fchmod(nfd, mode)  # mkdir's mode went through the umask
                        os.close(fd)
                        fd = nfd
                        continue
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _refuse(prefix, path) from exc
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refuse(prefix, path) from exc
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_dir(path: str, mode: int) -> bool:
    """Create folder `path` (mode `mode`) when missing, refusing symlinks on the way; True if created."""
    parent, name = os.path.split(path.rstrip("/"))
    pfd = open_dir(parent, 0o755)
    try:
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(path, path)
            return False
        with _closing(open_dir(path, mode)):
            return True
    finally:
        os.close(pfd)


def read_nofollow(path: str) -> bytes | None:
    """The content of regular file `path`, or None when it (or its folder) does not exist. A symlink
    on the way or as the file itself is refused: its target's content must not reach a diff."""
    parent, name = os.path.split(path)
    try:
        pfd = open_dir(parent)
    except FileNotFoundError:
        return None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=pfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(path, path) from exc
            raise
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise _refuse(path, path)
            return fh.read()
    finally:
        os.close(pfd)


def file_mode(path: str) -> int | None:
    """Permission bits of `path` itself (never of what a symlink points to), None when missing."""
    try:
        return os.lstat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def write_atomic(path: str, data: bytes, mode: int, owner: tuple[int, int] | None = (0, 0),
                 dir_mode: int = 0o755) -> None:
    """Replace `path` with `data` (mode `mode`, owner root unless told) in one rename, never following a
    symlink: see the module docstring. Missing folders are created with `dir_mode`."""
    parent, name = os.path.split(path)
    if not name:
        raise UnsafePath(f"{path}: not a file path")
    pfd = open_dir(parent, dir_mode)
    try:
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise _refuse(path, path)
        tmp = ""
        fd = -1
        for _ in range(20):
            tmp = f".{name[:200]}.omldeploy-{secrets.token_hex(6)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=pfd)
                break
            except FileExistsError:
                continue
        if fd < 0:
            raise UnsafePath(f"{path}: cannot create a temporary file beside it")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if owner is not None:
                    os.fchown(fh.fileno(), *owner)
                os.fchmod(fh.fileno(), mode)
            os.replace(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            raise
    finally:
        os.close(pfd)


class _closing:
    """Closes a raw descriptor at the end of a `with` block."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
