"""module_utils/omldeploy_safefs.py: host-side writes that a planted symlink cannot redirect (issue 12, M6).

The file runs on the hosts inside Ansible modules; here it is imported from the source tree and attacked
in tmp folders the way a compromised container would attack a bind-mounted folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.apply.test_engine_plan import safefs_module


@pytest.fixture
def fs() -> ModuleType:
    return safefs_module()


def test_writes_atomically_with_mode_and_creates_folders(fs: ModuleType, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "env"
    fs.write_atomic(str(target), b"X=1\n", 0o600, owner=None)
    assert target.read_bytes() == b"X=1\n" and target.stat().st_mode & 0o777 == 0o600
    fs.write_atomic(str(target), b"X=2\n", 0o640, owner=None)
    assert target.read_bytes() == b"X=2\n" and target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["env"]  # no temporary file left
    assert fs.read_nofollow(str(target)) == b"X=2\n" and fs.file_mode(str(target)) == 0o640
    assert fs.read_nofollow(str(tmp_path / "missing" / "x")) is None


def test_a_symlinked_target_is_refused_and_its_target_untouched(fs: ModuleType, tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root:secret\n")
    victim.chmod(0o600)
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "key.pem").symlink_to(victim)  # planted from inside a container
    with pytest.raises(fs.UnsafePath, match=r"key\.pem is a symbolic link"):
        fs.write_atomic(str(certs / "key.pem"), b"KEY", 0o644, owner=None)
    assert victim.read_bytes() == b"root:secret\n" and victim.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in certs.iterdir()) == ["key.pem"]  # no temporary file left
    with pytest.raises(fs.UnsafePath):  # its content must not reach a --check diff either
        fs.read_nofollow(str(certs / "key.pem"))
    assert fs.file_mode(str(certs / "key.pem")) != 0o600  # the link's own mode, not the victim's


def test_a_symlinked_parent_folder_is_refused(fs: ModuleType, tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc-systemd-system"
    elsewhere.mkdir()
    custom = tmp_path / "custom"
    custom.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(fs.UnsafePath, match="custom is a symbolic link"):
        fs.write_atomic(str(custom / "evil.service"), b"[Service]\n", 0o644, owner=None)
    with pytest.raises(fs.UnsafePath):  # also deeper: a link anywhere on the way
        fs.write_atomic(str(custom / "sub" / "x.conf"), b"x", 0o644, owner=None)
    with pytest.raises(fs.UnsafePath):
        fs.ensure_dir(str(custom / "sub"), 0o755)
    with pytest.raises(fs.UnsafePath):
        fs.read_nofollow(str(custom / "x.conf"))
    assert list(elsewhere.iterdir()) == []


def test_a_file_where_a_folder_belongs_is_refused(fs: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(fs.UnsafePath, match="not a folder"):
        fs.write_atomic(str(tmp_path / "state" / "x"), b"x", 0o600, owner=None)
    with pytest.raises(fs.UnsafePath):
        fs.ensure_dir(str(tmp_path / "state"), 0o700)
    with pytest.raises(fs.UnsafePath, match=r"'\.\.'"):
        fs.write_atomic(str(tmp_path) + "/a/../b", b"x", 0o600, owner=None)


def test_ensure_dir_creates_with_the_mode_once(fs: ModuleType, tmp_path: Path) -> None:
    d = tmp_path / "x" / "journal"
    assert fs.ensure_dir(str(d), 0o2755) is True
    assert d.is_dir() and d.stat().st_mode & 0o7777 == 0o2755
    d.chmod(0o700)  # an operator's later choice is kept
    assert fs.ensure_dir(str(d), 0o2755) is False and d.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_files_are_owned_by_root_by_default(fs: ModuleType, tmp_path: Path) -> None:
    target = tmp_path / "f"
    fs.write_atomic(str(target), b"x", 0o644)
    assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)
