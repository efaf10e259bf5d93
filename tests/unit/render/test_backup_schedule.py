"""`backup_schedule`: a timer on the host the backups dump from, with the agent and its 0600 config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from omldeploy.inventory import InventoryError, load_tenant
from omldeploy.render.backup_schedule import unit_name
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

SCHEDULE = {"backup_schedule": "*-*-* 03:15", "backup_keep": 7}


def _scheduled_hosts(bundle) -> list[str]:  # type: ignore[no-untyped-def]
    return [hb.host for hb in bundle.hosts if any(u.endswith(".timer") for u in hb.host_units)]


def test_aio_timer_with_files_and_private_config(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars=SCHEDULE)
    bundle = render_tenant(tenant)
    assert _scheduled_hosts(bundle) == ["omnileads_aio"]
    hb = bundle.host("omnileads_aio")
    timer = hb.file(f"/etc/systemd/system/{unit_name('t1')}.timer").content.decode()
    assert "OnCalendar=*-*-* 03:15" in timer and "Persistent=true" in timer
    cfg_file = hb.file("/etc/omldeploy/backup/t1.json")
    assert cfg_file.mode == 0o600 and cfg_file.secret
    cfg = json.loads(cfg_file.content)
    assert cfg["files"] is True and cfg["keep"] == 7 and cfg["db"]["mode"] == "exec"
    assert cfg["s3"]["secret_key"] == tenant.settings.text("bucket_secret_key")


def test_ait_timer_on_the_data_host_database_only(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ait", vars=SCHEDULE))
    assert _scheduled_hosts(bundle) == ["omnileads_data"]
    cfg = json.loads(bundle.host("omnileads_data").file("/etc/omldeploy/backup/t1.json").content)
    assert cfg["files"] is False and cfg["files_elsewhere"] == "omnileads_voice"


def test_no_schedule_no_timer(make_tenant: MakeTenant) -> None:
    assert _scheduled_hosts(render_tenant(make_tenant("aio"))) == []


def test_the_shipped_agent_imports_with_the_standard_library_only(make_tenant: MakeTenant, tmp_path: Path) -> None:
    """What lands in /usr/local/lib/omldeploy-backup/<t>/ must run on a host without omldeploy installed."""
    hb = render_tenant(make_tenant("aio", vars=SCHEDULE)).host("omnileads_aio")
    prefix = "/usr/local/lib/omldeploy-backup/t1/"
    for f in hb.files:
        if f.path.startswith(prefix):
            dest = tmp_path / f.path[len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.content)
    proc = subprocess.run([sys.executable, "-S", "-c", "import omldeploy.backup.agent as a, omldeploy_backup as m; "
                           "print(a.CUSTOM_DIR, m.AnsibleModule, m.safefs.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    # the symlink-safe writer (restores write with it) is shipped beside the module
    assert proc.stdout.split() == ["/etc/asterisk/custom", "None", str(tmp_path / "omldeploy_safefs.py")]


@pytest.mark.parametrize(("value", "message"), [
    ("every tuesday-ish", "systemd cannot parse"),
    ("$(reboot)", "is not a calendar expression"),
])
def test_bad_schedule_is_refused_with_the_key(make_tenant: MakeTenant, value: str, message: str) -> None:
    tenant = make_tenant("aio")
    inv = tenant.inventory_path
    inv.write_text(inv.read_text().replace("    SCA:", f"    backup_schedule: '{value}'\n    SCA:", 1))
    with pytest.raises(InventoryError) as err:
        load_tenant(inv.parent, "t1")
    assert any(p.key == "backup_schedule" and message in p.message for p in err.value.problems)
