"""The example layouts render exactly the checked-in trees (see golden.py to regenerate)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.render.golden import GOLDEN, LAYOUTS, render_layout, tree


@pytest.mark.parametrize("layout", LAYOUTS)
def test_render_matches_golden(layout: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_layout(layout, out)
    got = {k: v[1] for k, v in tree(out).items()}
    want = {k: v[1] for k, v in tree(GOLDEN / layout).items()}
    hint = "regenerate with: PYTHONPATH=src python -m tests.unit.render.golden"
    assert sorted(got) == sorted(want), f"file set differs; {hint}"
    changed = [k for k in want if got[k] != want[k]]
    assert not changed, f"files differ from golden: {changed}"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_written_modes_follow_manifest(layout: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_layout(layout, out)
    for manifest in out.glob("*/omldeploy-manifest.json"):
        host = manifest.parent
        for f in json.loads(manifest.read_text())["files"]:
            mode = (host / f["path"].lstrip("/")).stat().st_mode & 0o7777
            assert f"{mode:04o}" == f["mode"], f["path"]
            if f["secret"]:
                assert f["mode"] == "0600", f"{host.name}:{f['path']} is secret but {f['mode']}"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_render_is_deterministic(layout: str, tmp_path: Path) -> None:
    render_layout(layout, tmp_path / "a")
    render_layout(layout, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is required (apt-get install systemd); .ci/run installs it")
    return exe


@pytest.mark.parametrize("layout", LAYOUTS)
def test_classic_units_pass_systemd_analyze_verify(layout: str, tmp_path: Path) -> None:
    exe = _systemd_analyze()
    if not Path("/usr/bin/podman").exists():
        pytest.fail("/usr/bin/podman must exist for `systemd-analyze verify` (ExecStart is checked); "
                    ".ci/run installs podman")
    units = sorted((GOLDEN / layout).glob("*/etc/systemd/system/*"))
    assert units, "no classic units rendered"
    for host_dir in sorted(p for p in (GOLDEN / layout).iterdir() if p.is_dir()):
        host_units = sorted((host_dir / "etc/systemd/system").glob("*"))
        if not host_units:
            continue
        work = tmp_path / host_dir.name
        work.mkdir()
        for u in host_units:
            shutil.copy(u, work / u.name)
        proc = subprocess.run([exe, "verify", *sorted(str(p) for p in work.iterdir())], capture_output=True,
                              text=True, env={"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin"})
        problems = []
        for line in (proc.stdout + proc.stderr).splitlines():
            shipped = re.search(r"Command (/\S+) is not executable", line)
            if shipped and (host_dir / shipped.group(1).lstrip("/")).is_file():
                continue  # the bundle installs that executable itself
            problems.append(line)
        assert not problems, f"{host_dir.name}: " + "\n".join(problems)
