"""Per-tenant lock (one operation per tenant, tenants in parallel) and the redacting run log."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from omldeploy.state.lock import TenantBusy, tenant_lock
from omldeploy.state.runlog import Redactor, RunLog

HOLD = """
import sys, time
from pathlib import Path
from omldeploy.state.lock import tenant_lock
with tenant_lock(Path(sys.argv[1]), "t", "install"):
    print("locked", flush=True)
    time.sleep(30)
"""


@pytest.fixture
def holder(tmp_path: Path) -> subprocess.Popen[str]:
    folder = tmp_path / "tenant-a"
    folder.mkdir()
    src = Path(__file__).resolve().parents[3] / "src"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_same_tenant_is_refused_with_the_holder(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    with pytest.raises(TenantBusy) as exc, tenant_lock(tmp_path / "tenant-a", "t", "upgrade"):
        pass
    assert "'install'" in str(exc.value) and f"pid {holder.pid}" in str(exc.value)


def test_other_tenants_are_free(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    other = tmp_path / "tenant-b"
    other.mkdir()
    with tenant_lock(other, "b", "install"):
        pass


def test_lock_is_released_when_the_holder_dies(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    holder.kill()
    holder.wait()
    time.sleep(0.1)
    with tenant_lock(tmp_path / "tenant-a", "t", "install"):
        pass


def test_run_log_redacts_secrets_and_is_private(tmp_path: Path) -> None:
    log = RunLog(tmp_path, "install", Redactor(["s3cr3t-value", "ab"]))
    log.write("password=s3cr3t-value and ab stays")
    log.close()
    text = log.path.read_text()
    assert "s3cr3t-value" not in text and "password=***" in text and "ab stays" in text
    assert log.path.stat().st_mode & 0o777 == 0o600
