"""`fleet drill-restore --schedule`: the units are written where told, checked by `systemd-analyze verify`,
enabled through systemctl (a recorder here: this machine runs no systemd), removed again on a failure."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.ops import drill_schedule as ds

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, args: list[str]) -> tuple[int, str]:
        self.calls.append(args)
        if self.fail_on and args[0] == self.fail_on:
            return 1, "System has not been booted with systemd as init system (PID 1)."
        return 0, ""


def _exec_args(service: str) -> list[str]:
    line = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    return [a.replace("%%", "%").replace("$$", "$") for a in shlex.split(line[len("ExecStart="):])]


def test_units_are_verified_enabled_and_run_this_package(tmp_path: Path) -> None:
    root = tmp_path / "my fleet 100% $HOME"
    root.mkdir()
    units = tmp_path / "units"
    rec = Recorder()
    timer, calendar = ds.schedule(root, pattern="acme-*", calendar="Sun 03:00", parallel=3, unit_dir=units,
                                  systemctl=rec)
    name = ds.unit_name(root)
    assert timer == f"{name}.timer" and calendar == "Sun *-*-* 03:00:00"
    assert rec.calls == [["daemon-reload"], ["enable", "--now", timer]]
    service = (units / f"{name}.service").read_text()
    assert _exec_args(service) == [sys.executable, "-m", "omldeploy", "--instances", str(root.resolve()), "fleet",
                                   "drill-restore", "--tenants", "acme-*", "--parallel", "3", "--json"]
    assert "OnCalendar=Sun *-*-* 03:00:00" in (units / timer).read_text()
    assert (units / timer).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in units.iterdir()) == [f"{name}.service", timer]  # no temp file left
    # again with another calendar: replaced, not duplicated
    ds.schedule(root, pattern="acme-*", calendar="daily", parallel=3, unit_dir=units, systemctl=rec)
    assert "OnCalendar=*-*-* 00:00:00" in (units / timer).read_text() and len(list(units.iterdir())) == 2
    assert ds.unschedule(root, unit_dir=units, systemctl=rec)
    assert list(units.iterdir()) == [] and ["disable", "--now", timer] in rec.calls
    assert not ds.unschedule(root, unit_dir=units, systemctl=rec)


def test_without_systemd_nothing_is_left_behind(tmp_path: Path) -> None:
    units = tmp_path / "units"
    with pytest.raises(ds.ScheduleError, match="needs systemd running on this controller"):
        ds.schedule(tmp_path, pattern="*", calendar="daily", parallel=2, unit_dir=units,
                    systemctl=Recorder(fail_on="enable"))
    assert list(units.iterdir()) == []


@pytest.mark.parametrize("calendar, message", [
    ("bogus", "Failed to parse calendar specification"),
    ("", "not a systemd calendar"),
    ("daily\nExecStart=/bin/sh", "not a systemd calendar"),
])
def test_a_bad_calendar_exits_2_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           calendar: str, message: str) -> None:
    (tmp_path / "t1").mkdir()
    (tmp_path / "t1" / "inventory.yml").write_text("all: {}\n")
    code = main(["fleet", "drill-restore", "--instances", str(tmp_path), "--schedule", calendar])
    assert code == 2 and message in capsys.readouterr().err


def test_control_characters_never_reach_a_unit_file(tmp_path: Path) -> None:
    with pytest.raises(ds.ScheduleError, match="control characters"):
        ds.render(tmp_path, pattern="a\nExecStartPre=/bin/evil", calendar="daily", parallel=1)
