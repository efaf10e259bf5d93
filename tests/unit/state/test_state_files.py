"""Secret material modes and damaged or unwritable tenant state (issue 12: modes never checked,
corrupted state ending in exit 70).

Real failures where the machine allows them: a real `git clone`, a real read-only bind mount (in a
private mount namespace, `unshare -m`), a real ENOSPC from /dev/full.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.inventory import load_tenant, private_files
from omldeploy.inventory.state_errors import StateError
from omldeploy.render import material
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from omldeploy.state.runlog import Redactor, RunLog

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def inst(tmp_path: Path) -> Path:
    root = tmp_path / "instances"
    assert main(["--instances", str(root), "tenant", "new", "acme", "--layout", "aio"]) == 0
    assert main(["--instances", str(root), "plan", "--tenant", "acme"]) == 0  # generates the material
    tenant = load_tenant(root / "acme", "acme")
    ledger.append(tenant.folder, ledger.Record(action="install", outcome="ok", started="t", duration=1,
                                               versions={}), redact=str)
    return root


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _cli(*argv: str, unshare_ro: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omldeploy", *argv]
    if unshare_ro is not None:
        inner = " ".join(f"'{a}'" for a in cmd)
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               f"mount --bind -o ro '{unshare_ro}' '{unshare_ro}' && exec {inner}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs a private mount namespace (root, unshare)")


# ----------------------------------------------------------------------------- modes

@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_a_git_clone_of_the_tenants_repository_is_tightened_and_said(inst: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(inst)], check=True)
    subprocess.run([*git, "-C", str(inst), "add", "-A", "-f"], check=True)
    subprocess.run([*git, "-C", str(inst), "commit", "-q", "-m", "tenants"], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "-c", "core.sharedRepository=0644", "clone", "-q", str(inst), str(clone)], check=True,
                   env={**os.environ}, preexec_fn=lambda: os.umask(0o022))
    folder = clone / "acme"
    secret_files = [folder / "inventory.yml", folder / ".omldeploy/secrets.yml", folder / ".omldeploy/pki/ca.key",
                    folder / ".omldeploy/pki/server.key", folder / ".omldeploy/ledger.jsonl"]
    assert all(_mode(p) == 0o644 for p in secret_files), [oct(_mode(p)) for p in secret_files]
    assert _mode(folder / ".omldeploy") == 0o755
    capsys.readouterr()
    load_tenant(folder, "acme")
    assert all(_mode(p) == 0o600 for p in secret_files)
    assert _mode(folder / ".omldeploy") == 0o700
    assert _mode(folder / ".omldeploy/pki/ca.pem") == 0o644  # a certificate is public: left alone
    err = capsys.readouterr().err
    for p in secret_files:
        assert f"{p} was mode 0644, readable by other users; tightened to 0600" in err
    load_tenant(folder, "acme")  # idempotent: nothing more to say
    assert capsys.readouterr().err == ""


def test_a_mode_that_cannot_be_changed_stops_with_the_chmod_to_run(inst: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # a file of another user: root cannot be refused a chmod, so the refusal is simulated at os.chmod
    secrets = inst / "acme/.omldeploy/secrets.yml"
    os.chmod(secrets, 0o644)

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(private_files.os, "chmod", refuse)
    assert main(["--instances", str(inst), "plan", "--tenant", "acme"]) == 2
    err = capsys.readouterr().err
    assert str(secrets) in err and f"chmod go-rwx {secrets}" in err and "0644" in err


@needs_mount
def test_world_readable_secrets_on_a_read_only_checkout_are_refused(inst: Path) -> None:
    secrets = inst / "acme/.omldeploy/secrets.yml"
    os.chmod(secrets, 0o644)
    proc = _cli("--instances", str(inst), "plan", "--tenant", "acme", unshare_ro=inst)
    assert proc.returncode == 2, proc.stderr
    assert f"chmod go-rwx {secrets}" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- damaged state

@pytest.mark.parametrize("content", [
    b"keepalived_auth_pass: [unclosed\nrepmgr_password: S3cretLeak-abcdef\n",
    b"- a list\n- S3cretLeak-abcdef\n",
    b"\xff\xfe\x00garbage S3cretLeak-abcdef",
    b"keepalived_auth_pass:\nrepmgr_password: S3cretLeak-abcdef\n",
    b"keepalived_auth_pass: {nested: S3cretLeak-abcdef}\n",
])
def test_a_damaged_secrets_file_is_named_without_its_content(inst: Path, capsys: pytest.CaptureFixture[str],
                                                             content: bytes) -> None:
    secrets = inst / "acme/.omldeploy/secrets.yml"
    secrets.write_bytes(content)
    capsys.readouterr()
    assert main(["--instances", str(inst), "plan", "--tenant", "acme"]) == 2
    out, err = capsys.readouterr()
    assert str(secrets) in err and "is damaged" in err and "git checkout" in err
    assert "S3cretLeak" not in out + err
    assert secrets.read_bytes() == content  # never regenerated over: the hosts hold the old values


def test_a_full_disk_when_generating_secrets(inst: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = inst / "acme/.omldeploy/secrets.yml"
    secrets.unlink()

    def full(dir: str, prefix: str, suffix: str) -> tuple[int, str]:  # a real ENOSPC on every write
        return os.open("/dev/full", os.O_WRONLY), f"{dir}/{prefix}x{suffix}"

    monkeypatch.setattr(material.tempfile, "mkstemp", full)
    monkeypatch.setattr(material.os, "fchmod", lambda fd, mode: None)  # never chmod /dev/full itself
    capsys.readouterr()
    assert main(["--instances", str(inst), "plan", "--tenant", "acme"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full (ENOSPC)" in err and "secrets.yml" in err and "internal error" not in err


def test_a_full_disk_when_recording_in_the_ledger(inst: Path) -> None:
    path = ledger.ledger_path(inst / "acme")
    path.unlink()
    path.symlink_to("/dev/full")
    with pytest.raises(StateError, match=r"ledger.jsonl: cannot write the ledger: the disk is full \(ENOSPC\)"):
        ledger.append(inst / "acme", ledger.Record(action="install", outcome="ok", started="t", duration=1,
                                                   versions={}), redact=str)


def test_a_run_log_that_fills_the_disk_is_dropped_not_fatal(inst: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = RunLog(inst / "acme", "install", Redactor([]))
    log._fh.close()
    log._fh = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115 - the log's own handle, closed below
    log.write("first line")
    log.write("second line")
    log.close()
    err = capsys.readouterr().err
    assert err.count("the disk is full (ENOSPC)") == 1 and "goes on without its log" in err


@needs_mount
def test_a_read_only_instances_folder(inst: Path) -> None:
    (inst / "acme/.omldeploy/secrets.yml").unlink()
    proc = _cli("--instances", str(inst), "plan", "--tenant", "acme", unshare_ro=inst)
    assert proc.returncode == 2, proc.stderr
    assert "secrets.yml" in proc.stderr and "the file system is read-only (EROFS)" in proc.stderr
    assert "internal error" not in proc.stderr


@needs_mount
def test_the_lock_on_a_read_only_instances_folder(inst: Path, tmp_path: Path) -> None:
    script = ("import sys\nfrom pathlib import Path\nfrom omldeploy.state.lock import tenant_lock\n"
              "from omldeploy.inventory.state_errors import StateError\n"
              "try:\n    tenant_lock(Path(sys.argv[1]), 'acme', 'install').__enter__()\n"
              "except StateError as exc:\n    print(exc)\n    sys.exit(2)\n")
    (inst / "acme/.omldeploy/lock").unlink(missing_ok=True)
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           f"mount --bind -o ro '{inst}' '{inst}' && exec '{sys.executable}' -c \"$0\" '{inst}/acme'",
                           script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2, proc.stderr
    assert "lock: cannot write the tenant lock: the file system is read-only (EROFS)" in proc.stdout


def test_material_reads_back_what_it_wrote(inst: Path) -> None:
    assert set(material.tenant_secrets(inst / "acme")) == set(material.GENERATED_SECRETS)
    with tenant_lock(inst / "acme", "acme", "x"):
        pass


@needs_mount
def test_tenant_new_in_a_read_only_instances_folder(inst: Path) -> None:
    proc = _cli("--instances", str(inst), "tenant", "new", "other", "--layout", "aio", unshare_ro=inst)
    assert proc.returncode == 2, proc.stderr
    assert "instances/other" in proc.stderr and "read-only (EROFS)" in proc.stderr and "Traceback" not in proc.stderr
