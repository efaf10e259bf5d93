"""Where the Ansible Vault password comes from: `--vault-password-file`, `--ask-vault-pass` or
`ANSIBLE_VAULT_PASSWORD_FILE`, the same three sources `ansible-playbook` reads.

The CLI configures the source once per process (global options, any verb); the inventory loader asks
for the password only when it meets an encrypted value or file, so a tenant without a vault never needs
one and `--ask-vault-pass` prompts at most once. The password itself is kept in this module's memory
only, never printed, and never put on a command line or in an environment variable of a child process.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

ENV = "ANSIBLE_VAULT_PASSWORD_FILE"
#: a password file is one line; anything bigger is not one (and must not be read into memory whole)
MAX_FILE = 4096


class NoVaultPassword(Exception):
    """An encrypted value needs a password and no source gives one (or the source is unusable)."""


@dataclass
class _Source:
    file: str | None = None
    ask: bool = False
    cached: bytes | None = None


_source = _Source()


def configure(file: str | None = None, ask: bool = False) -> None:
    """Set the process-wide source (the CLI does it from the global options)."""
    global _source
    _source = _Source(file=file, ask=ask)


def describe() -> str:
    """Which source is in use, for messages (a path, never the password)."""
    if _source.file:
        return f"--vault-password-file {_source.file}"
    if _source.ask:
        return "--ask-vault-pass"
    if os.environ.get(ENV):
        return f"{ENV}={os.environ[ENV]}"
    return "no vault password source"


def password() -> bytes:
    """The vault password (read or asked once); NoVaultPassword when none is configured."""
    if _source.cached is not None:
        return _source.cached
    file = _source.file or (None if _source.ask else os.environ.get(ENV))
    if file:
        value = read_password_file(Path(file).expanduser())
    elif _source.ask:
        try:
            value = getpass.getpass("Vault password: ").encode("utf-8")
        except (EOFError, OSError):
            raise NoVaultPassword("--ask-vault-pass needs a terminal to ask on") from None
    else:
        raise NoVaultPassword(f"no vault password given: use --vault-password-file FILE, --ask-vault-pass "
                              f"or {ENV}=FILE")
    if not value:
        raise NoVaultPassword(f"the vault password from {describe()} is empty")
    _source.cached = value
    return value


def available() -> bool:
    """Whether a source is configured (without reading or asking)."""
    return bool(_source.file or _source.ask or os.environ.get(ENV))


def read_password_file(path: Path) -> bytes:
    """A password file's first line (as ansible-vault reads it: trailing newline stripped)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE + 1)
    except OSError as exc:
        raise NoVaultPassword(f"cannot read the vault password file {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE:
        raise NoVaultPassword(f"the vault password file {path} is larger than {MAX_FILE} bytes; it must hold "
                              "the password on one line")
    return data.split(b"\n", 1)[0].rstrip(b"\r")
