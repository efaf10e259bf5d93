"""Ansible Vault in inventories: `!vault |` values and a whole encrypted `vault.yml` beside the inventory.

Decrypted with ansible-core's own VaultLib, so whatever `ansible-vault encrypt_string` or
`ansible-vault encrypt` wrote is read here exactly as Ansible reads it. The password comes from
inventory/vaultsource.py. A wrong or missing password is an input problem (exit 2) naming the file and
the key; no message ever holds plaintext. Every decrypted value is a secret by construction: it can only
land in a secret key (SECRET_KEYS) or in vault.yml, which holds nothing else, and render/taint.py then
treats each file built from it as secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omldeploy.inventory.problems import Problems

VAULT_FILE = "vault.yml"
HEADER = b"$ANSIBLE_VAULT;"
#: the hex-armoured ciphertext of yamlsource.MAX_BYTES of plaintext, with room to spare
MAX_VAULT_BYTES = 3_000_000


class VaultError(Exception):
    """An encrypted value or file cannot be decrypted; `key` names what (never the plaintext)."""

    def __init__(self, key: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


def _lib(password: bytes) -> Any:
    from ansible.parsing.vault import VaultLib, VaultSecret  # type: ignore[import-untyped,unused-ignore]

    return VaultLib([("default", VaultSecret(password))])


def is_encrypted(data: bytes | str) -> bool:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return raw.lstrip().startswith(HEADER)


def decrypt(ciphertext: bytes | str, key: str, line: int | None = None) -> str:
    """The plaintext of one vault blob; VaultError naming `key` when it cannot be decrypted."""
    from omldeploy.inventory import vaultsource

    try:
        secret = vaultsource.password()
    except vaultsource.NoVaultPassword as exc:
        raise VaultError(key, f"is encrypted with Ansible Vault and {exc}", line) from None
    try:
        from ansible.errors import AnsibleError  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise VaultError(key, "is encrypted with Ansible Vault, and decrypting needs ansible-core, which this "
                         "Python cannot import (install omldeploy with its dependencies)", line) from None
    raw = ciphertext.encode("utf-8") if isinstance(ciphertext, str) else ciphertext
    try:
        plain = _lib(secret).decrypt(raw.strip())
    except AnsibleError as exc:
        # AnsibleError's text never holds the plaintext, but keep only our own words anyway
        why = "the vault password is wrong" if "Decryption failed" in str(exc) else "not a valid vault blob"
        raise VaultError(key, f"cannot be decrypted ({why}; password from {vaultsource.describe()})",
                         line) from None
    except (ValueError, TypeError):
        raise VaultError(key, "is not a valid Ansible Vault blob", line) from None
    try:
        return bytes(plain).decode("utf-8")
    except UnicodeDecodeError:
        raise VaultError(key, "decrypts to bytes that are not UTF-8 text", line) from None


def encrypt(plaintext: str, password: bytes) -> bytes:
    """A vault blob (format 1.1, AES256) as `ansible-vault encrypt` writes it."""
    return bytes(_lib(password).encrypt(plaintext.encode("utf-8")))


def merge_vault_file(doc: Any, path: Path, problems: Problems) -> None:
    """Merge `vault.yml` (beside the inventory) into the inventory's `all: vars:`, as Ansible merges a
    vars file: a whole-file vault or a plain file of `!vault` values. Only secret keys may be in it, and
    a key may not be written both there and in the inventory (one would silently win)."""
    from omldeploy.inventory.problems import Problems as P
    from omldeploy.inventory.schema import SECRET_KEYS
    from omldeploy.inventory.yamlsource import YamlSyntaxError, load

    if not path.exists():
        return
    own = P(path)

    def fail() -> None:
        problems.items.extend(own.items)

    try:
        if path.stat().st_size > MAX_VAULT_BYTES:  # bounded before decrypting, as the inventory is
            own.add("(file)", f"is larger than {MAX_VAULT_BYTES} bytes (a vault of passwords is a few KB)")
            return fail()
        raw = path.read_bytes()
    except OSError as exc:
        own.add("(file)", f"cannot read the vault file: {exc.strerror}")
        return fail()
    try:
        text = decrypt(raw, "(file)") if is_encrypted(raw) else raw.decode("utf-8")
        data = load(text)
    except VaultError as exc:
        own.add(exc.key, str(exc), line=exc.line)
        return fail()
    except UnicodeDecodeError:
        own.add("(file)", "is not UTF-8 text (nor an Ansible Vault file)")
        return fail()
    except YamlSyntaxError as exc:
        # the parser's message may quote the plaintext: only the line is given
        own.add("(yaml)", "the decrypted vault file is not valid YAML, or holds more than an inventory may (the "
                "parser's message is not shown: it may quote secrets)", line=exc.line)
        return fail()
    if data.data is None:
        return
    if not isinstance(data.data, dict):
        own.add("(file)", "must be a mapping of secret settings (key: value)")
        return fail()
    inventory_all = doc.data.get("all") if isinstance(doc.data, dict) else None
    if not isinstance(inventory_all, dict):
        return  # the inventory's own problems say what is wrong with it
    all_vars = inventory_all.get("vars")
    if all_vars is None:
        all_vars = inventory_all["vars"] = {}
    if not isinstance(all_vars, dict):
        return
    for key, value in data.data.items():
        line = data.key_lines.get((key,))
        if key not in SECRET_KEYS:
            own.add(key, "is not a secret setting; only secrets belong in the vault file", line=line,
                    allowed="the password keys of the inventory (postgres_password, ami_password, ...)")
            continue
        if isinstance(value, dict | list) or value is None:
            own.add(key, "must be a single value", line=line)
            continue
        if key in all_vars:
            own.add(key, f"is written both in {path.name} and in the inventory; one would silently win",
                    line=line, allowed="keep it in one of them")
            continue
        scalar = data.scalars.get((key,))
        # the literal text, as for inventory values (`0123` stays 0123, not the octal 83)
        all_vars[key] = value if isinstance(value, str) else (scalar.text if scalar is not None else str(value))
        doc.vaulted.add(("all", "vars", key))
    fail()
