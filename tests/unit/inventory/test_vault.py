"""Ansible Vault in inventories (issue 12, secrets): `!vault` values and a whole encrypted vault.yml,
with the password from --vault-password-file, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.inventory import load_tenant, vaultsource
from omldeploy.inventory.problems import InventoryError
from omldeploy.inventory.vault import encrypt
from tests.unit.conftest import EXAMPLES, fill_placeholders

PASSWORD = b"unit-vault-pass"
SECRET = "pg-Secret-9f3Kx2LmQ8"


def _inline(value: str, password: bytes = PASSWORD, indent: int = 6) -> str:
    blob = encrypt(value, password).decode()
    return "!vault |\n" + "".join(" " * indent + line + "\n" for line in blob.splitlines())


def _tenant_dir(tmp_path: Path, text: str, vault: bytes | None = None) -> Path:
    folder = tmp_path / "instances" / "t1"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(text)
    if vault is not None:
        (folder / "vault.yml").write_bytes(vault)
    return folder


def _aio() -> str:
    return fill_placeholders((EXAMPLES / "inventory_aio.yml").read_text())


def _with_inline(text: str, key: str, value: str) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(f"{key}:"):
            indent = len(line) - len(line.lstrip())
            lines[i] = " " * indent + f"{key}: " + _inline(value, indent=indent + 2)
            return "".join(lines)
    raise AssertionError(key)


def _password_file(tmp_path: Path, password: bytes = PASSWORD) -> Path:
    path = tmp_path / "vault-pass"
    path.write_bytes(password + b"\n")
    return path


def _errors(folder: Path) -> str:
    with pytest.raises(InventoryError) as exc:
        load_tenant(folder, "t1")
    return "\n".join(p.format() for p in exc.value.problems)


def test_inline_vault_value_decrypts_with_the_password_file(tmp_path: Path) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "postgres_password", SECRET))
    vaultsource.configure(file=str(_password_file(tmp_path)))
    assert load_tenant(folder, "t1").settings.text("postgres_password") == SECRET


def test_the_environment_variable_is_a_password_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "ami_password", SECRET))
    monkeypatch.setenv(vaultsource.ENV, str(_password_file(tmp_path)))
    assert load_tenant(folder, "t1").settings.text("ami_password") == SECRET


def test_wrong_password_names_file_and_key_never_the_secret(tmp_path: Path) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "postgres_password", SECRET))
    vaultsource.configure(file=str(_password_file(tmp_path, b"wrong")))
    text = _errors(folder)
    assert "inventory.yml:" in text and "all.vars.postgres_password" in text and "password is wrong" in text
    assert SECRET not in text


def test_missing_password_says_how_to_give_one(tmp_path: Path) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "postgres_password", SECRET))
    text = _errors(folder)
    assert "--vault-password-file" in text and "--ask-vault-pass" in text and vaultsource.ENV in text


def test_unreadable_password_file_is_named(tmp_path: Path) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "postgres_password", SECRET))
    vaultsource.configure(file=str(tmp_path / "nope"))
    assert f"cannot read the vault password file {tmp_path / 'nope'}" in _errors(folder)


def test_only_secret_settings_may_be_vaulted(tmp_path: Path) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "TZ", "UTC"))
    vaultsource.configure(file=str(_password_file(tmp_path)))
    assert "all.vars.TZ: is encrypted with Ansible Vault but is not a secret setting" in _errors(folder)


def _without(text: str, key: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith(f"{key}:"))


def test_encrypted_vault_file_is_merged_as_vars(tmp_path: Path) -> None:
    vault = encrypt(f"postgres_password: {SECRET}\nami_password: '0123'\n", PASSWORD)
    folder = _tenant_dir(tmp_path, _without(_without(_aio(), "postgres_password"), "ami_password"), vault)
    vaultsource.configure(file=str(_password_file(tmp_path)))
    tenant = load_tenant(folder, "t1")
    assert tenant.settings.text("postgres_password") == SECRET and tenant.settings.text("ami_password") == "0123"


def test_vault_file_with_wrong_password_stops_with_one_error(tmp_path: Path) -> None:
    vault = encrypt(f"postgres_password: {SECRET}\n", PASSWORD)
    folder = _tenant_dir(tmp_path, _without(_aio(), "postgres_password"), vault)
    vaultsource.configure(file=str(_password_file(tmp_path, b"other")))
    text = _errors(folder)
    assert "vault.yml: error: (file): cannot be decrypted (the vault password is wrong" in text
    assert "missing" not in text and SECRET not in text


def test_vault_file_may_not_repeat_or_hold_plain_settings(tmp_path: Path) -> None:
    vault = encrypt(f"postgres_password: {SECRET}\nTZ: UTC\n", PASSWORD)
    folder = _tenant_dir(tmp_path, _aio(), vault)
    vaultsource.configure(file=str(_password_file(tmp_path)))
    text = _errors(folder)
    assert "vault.yml" in text and "postgres_password: is written both in vault.yml and in the inventory" in text
    assert "TZ: is not a secret setting" in text and SECRET not in text


def test_alias_bomb_inside_the_vault_file_stays_bounded(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    folder = _tenant_dir(tmp_path, _aio(), encrypt(bomb, PASSWORD))
    vaultsource.configure(file=str(_password_file(tmp_path)))
    text = _errors(folder)
    assert "vault.yml:1: error: (yaml): the decrypted vault file is not valid YAML, or holds more than" in text


def test_cli_option_before_or_after_the_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _tenant_dir(tmp_path, _with_inline(_aio(), "postgres_password", SECRET))
    pw = str(_password_file(tmp_path))
    inst = str(folder.parent)
    assert main(["--instances", inst, "validate", "--tenant", "t1"]) == 2
    assert main(["--instances", inst, "--vault-password-file", pw, "validate", "--tenant", "t1"]) == 0
    assert main(["--instances", inst, "validate", "--tenant", "t1", "--vault-password-file", pw]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err


def test_deploy_sh_passes_the_vault_password_file(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    tool = tmp_path / "tool"
    tool.mkdir()
    (tool / "deploy.sh").write_text((root / "deploy.sh").read_text())
    folder = tool / "instances" / "t1"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(_with_inline(_aio(), "postgres_password", SECRET))
    env = {k: v for k, v in os.environ.items() if k != vaultsource.ENV} | {
        "PYTHONPATH": str(root / "src"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def deploy(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(tool / "deploy.sh"), "--action=validate", "--tenant=t1", *extra],
                              capture_output=True, text=True, env=env)

    missing = deploy()
    assert missing.returncode == 2 and "no vault password given" in missing.stderr
    given = deploy(f"--vault-password-file={_password_file(tmp_path)}")
    assert given.returncode == 0, given.stderr
    assert SECRET not in missing.stdout + missing.stderr + given.stdout + given.stderr
