"""`omldeploy completion bash|zsh`: the scripts are run by the real shells and their candidates asserted.

bash: the completion function is called with COMP_WORDS/COMP_CWORD exactly as readline would.
zsh: once with compadd stubbed (every candidate, deterministic), once through zsh's own completion
system in a pseudo-terminal (zpty) pressing TAB, to prove the script works under compinit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omldeploy.cli.completion import remember_backup_ids
from omldeploy.state import ledger

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
ENV.pop("OMLDEPLOY_INSTANCES", None)


def generate(shell: str, dest: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "omldeploy", "completion", shell], capture_output=True, text=True,
                          env=ENV, check=False)
    assert proc.returncode == 0 and proc.stderr == ""
    path = dest / f"omldeploy.{shell}"
    path.write_text(proc.stdout)
    return path


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """An instances root with two tenants (one folder without an inventory), a ledger and a listing cache."""
    inst = tmp_path / "instances"
    for name in ("acme", "beta"):
        (inst / name).mkdir(parents=True)
        (inst / name / "inventory.yml").write_text("all: {}\n")
    (inst / "not-a-tenant").mkdir()
    folder = inst / "acme"
    rec = ledger.Record(action="backup", outcome="ok", started="t", duration=1, versions={},
                        extra={"bytes": 1, "id": "1600000000", "objects": 2})
    ledger.append(folder, rec, redact=str)  # covered by the listing below: pruned since, must not come back
    remember_backup_ids(folder, ["1700000001", "1700000002", "../evil"])
    ledger.append(folder, ledger.Record(action="install", outcome="ok", started="t", duration=1, versions={}),
                  redact=str)
    ledger.append(folder, ledger.Record(action="backup", outcome="ok", started="t", duration=1, versions={},
                                        extra={"bytes": 1, "id": "1700000009", "objects": 2}), redact=str)
    ledger.append(folder, ledger.Record(action="backup", outcome="failed", started="t", duration=1, versions={},
                                        extra={"id": "1700000010"}), redact=str)
    return tmp_path


def bash_complete(script: Path, cwd: Path, *words: str, env: dict[str, str] | None = None) -> list[str]:
    code = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _omldeploy; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "--norc", "-c", code, "x", str(script), "omldeploy", *words],
                          capture_output=True, text=True, cwd=cwd, env={**ENV, **(env or {})}, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_registers_and_completes(world: Path) -> None:
    script = generate("bash", world)
    proc = subprocess.run(["bash", "--norc", "-c", f'source "{script}"; complete -p omldeploy'],
                          capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "complete -F _omldeploy omldeploy"

    def c(*words: str, env: dict[str, str] | None = None) -> list[str]:
        return bash_complete(script, world, *words, env=env)

    verbs = c("")
    assert {"validate", "install", "backups", "tenant", "sandbox", "completion", "restart_core"} <= set(verbs)
    assert c("ba") == ["backup", "backups"]
    assert c("backups", "") == ["list", "verify", "prune"]
    assert c("tenant", "") == ["new", "list", "destroy"]
    assert c("fleet", "") == ["status", "drift", "upgrade", "drill-restore"]
    assert c("sandbox", "st") == ["status"]
    assert set(c("backups", "list", "--")) == {"--help", "--instances", "--json", "--tenant", "--verbose",
                                                "--vault-password-file", "--ask-vault-pass"}
    assert "--check" in c("install", "--c") and c("upgrade", "--rel") == ["--release"]
    assert c("tenant", "new", "x", "--layout", "") == ["aio", "ait", "cloud", "ha", "ha-aio"]
    assert c("completion", "") == ["bash", "zsh"]
    # tenant names: ./instances by default, --instances on either side of the verb, $OMLDEPLOY_INSTANCES
    assert c("validate", "--tenant", "") == ["acme", "beta"]
    assert c("--instances", str(world / "instances"), "plan", "-t", "a") == ["acme"]
    assert c("plan", "-t", "", env={"OMLDEPLOY_INSTANCES": str(world / "nowhere")}) == []
    assert c("status", "--instances", str(world / "nowhere"), "--tenant", "") == []
    assert c("status", "--tenant", "", env={"OMLDEPLOY_INSTANCES": str(world / "instances")}) == ["acme", "beta"]
    # backup ids: the listing cache plus successful backups the ledger gained since; no SSH, no Python
    assert c("restore", "--tenant", "acme", "--ts", "") == ["1700000001", "1700000002", "1700000009"]
    assert c("backups", "verify", "-t", "acme", "--ts", "17000000") == ["1700000001", "1700000002", "1700000009"]
    assert c("restore", "--tenant", "=", "acme", "--ts", "=", "") == ["1700000001", "1700000002", "1700000009"]
    assert c("restore", "--ts", "") == []  # no tenant typed yet: nothing to offer
    assert c("restore", "--tenant", "beta", "--ts", "") == []


def test_bash_without_a_cache_reads_the_whole_ledger(world: Path) -> None:
    script = generate("bash", world)
    (world / "instances/acme/.omldeploy/backup-ids").unlink()
    ids = bash_complete(script, world, "restore", "-t", "acme", "--ts", "")
    assert ids == ["1600000000", "1700000009"]


def test_backup_id_cache_is_private_and_ids_only(world: Path) -> None:
    cache = world / "instances/acme/.omldeploy/backup-ids"
    assert cache.stat().st_mode & 0o777 == 0o600
    assert cache.read_text().splitlines()[1:] == ["1700000001", "1700000002"]  # "../evil" is not an id


def test_completion_verb_rejects_other_shells() -> None:
    proc = subprocess.run([sys.executable, "-m", "omldeploy", "completion", "fish"], capture_output=True,
                          text=True, env=ENV, check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr


needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (apt-get install -y zsh)")


def zsh_complete(script: Path, cwd: Path, *words: str) -> list[str]:
    code = ('source "$1"; shift; '
            'compadd() { while [[ $1 == -* && $1 != -- ]]; do shift; done; [[ $1 == -- ]] && shift; '
            'print -rl -- "$@"; }; compset() { return 0; }; _files() { print -r -- "@files $*"; }; '
            'words=("$@"); CURRENT=$#words; _omldeploy')
    proc = subprocess.run(["zsh", "-f", "-c", code, "x", str(script), "omldeploy", *words], capture_output=True,
                          text=True, cwd=cwd, env=ENV, check=False)
    assert proc.stderr == "", proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


@needs_zsh
def test_zsh_function_candidates(world: Path) -> None:
    script = generate("zsh", world)
    assert subprocess.run(["zsh", "-n", str(script)], check=False).returncode == 0

    def c(*words: str) -> list[str]:
        return zsh_complete(script, world, *words)

    assert {"validate", "install", "backups", "sandbox", "completion"} <= set(c(""))
    assert c("backups", "") == ["list", "verify", "prune"]
    assert {"--json", "--instances", "--tenant", "-v"} <= set(c("backups", "list", "-"))
    assert c("validate", "-t", "") == ["acme", "beta"]
    assert c("--instances", str(world / "instances"), "validate", "--tenant", "") == ["acme", "beta"]
    assert c("validate", "--instances", str(world / "nowhere"), "--tenant", "") == []
    assert c("restore", "--tenant", "acme", "--ts", "") == ["1700000001", "1700000002", "1700000009"]
    assert c("restore", "--tenant=acme", "--ts=") == ["1700000001", "1700000002", "1700000009"]
    assert c("render", "-t", "acme", "--out", "") == ["@files -/"]


ZPTY = r"""
zmodload zsh/zpty
zpty z 'TERM=dumb zsh -f -i'
zpty -w z "PS1='READY> '; autoload -U compinit && compinit -u -D; source ${(q)1}; LISTMAX=1000; unsetopt beep"
zpty -r z junk '*READY> *READY> '
zpty -w -n z "$2"$'\t\t'
sleep 1.5
out=""
while zpty -r -t z chunk; do out+=$chunk; done
print -r -- $out
zpty -d z
"""


@needs_zsh
def test_zsh_through_compinit_in_a_terminal(world: Path) -> None:
    script = generate("zsh", world)
    driver = world / "drive.zsh"
    driver.write_text(ZPTY)

    def tab(line: str) -> str:
        proc = subprocess.run(["zsh", "-f", str(driver), str(script), line], capture_output=True, text=True,
                              cwd=world, env=ENV, timeout=30, check=False)
        return proc.stdout.replace("\r", "")

    listed = tab("omldeploy backups ")
    assert all(w in listed for w in ("list", "prune", "verify"))
    listed = tab("omldeploy restore -t acme --ts ")
    assert "1700000001" in listed and "1700000009" in listed and "1600000000" not in listed
