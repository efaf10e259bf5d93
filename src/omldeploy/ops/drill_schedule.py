"""`fleet drill-restore --schedule CALENDAR`: the restore drills on a systemd timer of the controller.

One service and one timer per instances folder (`omldeploy-drill-<hash of its path>`), so two fleets on
one controller keep their own schedules. The service runs this very interpreter and package
(`<python> -m omldeploy --instances <abs path> fleet drill-restore --json`), so the timer keeps working
whatever the PATH of systemd; its output (one JSON document) lands in the journal, and each drill in its
tenant's ledger, which `fleet status` reads. The calendar is checked by `systemd-analyze calendar` and
the units by `systemd-analyze verify` before anything is enabled.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

UNIT_DIR = Path("/etc/systemd/system")

#: runs systemctl with these arguments; returns (exit code, output)
Systemctl = Callable[[list[str]], tuple[int, str]]


class ScheduleError(Exception):
    """Bad calendar or pattern (exit 2), or the units could not be installed (message says which)."""


def unit_name(root: Path) -> str:
    return "omldeploy-drill-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


def _quote(arg: str) -> str:
    """One ExecStart argument, quoted for systemd: `%` and `$` would be expanded, `"` and `\\` escaped."""
    if any(ord(c) < 32 or ord(c) == 127 for c in arg):
        raise ScheduleError(f"{arg!r}: control characters cannot go into a unit file")
    text = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{text}"'


def check_calendar(calendar: str) -> str:
    """The calendar as systemd normalises it, or ScheduleError naming what systemd said."""
    if not calendar.strip() or len(calendar) > 200 or any(ord(c) < 32 for c in calendar):
        raise ScheduleError(f"--schedule {calendar[:60]!r}: not a systemd calendar (e.g. 'Sun 03:00', 'daily')")
    proc = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, timeout=30,
                          check=False)
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["rejected"]
        raise ScheduleError(f"--schedule {calendar!r}: {why[0]} (allowed: a systemd calendar such as "
                            "'Sun 03:00', 'daily', '*-*-01 04:00'; see `man systemd.time`)")
    for line in proc.stdout.splitlines():
        if line.strip().startswith("Normalized form:"):
            return line.split(":", 1)[1].strip()
    return calendar


def render(root: Path, *, pattern: str, calendar: str, parallel: int, python: str | None = None) -> dict[str, str]:
    name = unit_name(root)
    argv = [python or sys.executable, "-m", "omldeploy", "--instances", str(root.resolve()), "fleet",
            "drill-restore", "--tenants", pattern, "--parallel", str(parallel), "--json"]
    service = (f"[Unit]\nDescription=omldeploy restore drills of {_quote(str(root.resolve()))[1:-1]}\n"
               "After=network-online.target\nWants=network-online.target\n\n"
               "[Service]\nType=oneshot\n"
               f"ExecStart={' '.join(_quote(a) for a in argv)}\n"
               # one drill loads a whole dump on its database server: a run may take hours
               "TimeoutStartSec=12h\nNice=10\n")
    timer = (f"[Unit]\nDescription=omldeploy restore drills of {_quote(str(root.resolve()))[1:-1]}, on schedule\n\n"
             f"[Timer]\nOnCalendar={calendar}\nPersistent=true\nRandomizedDelaySec=15min\n"
             f"Unit={name}.service\n\n[Install]\nWantedBy=timers.target\n")
    return {f"{name}.service": service, f"{name}.timer": timer}


def _systemctl(args: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def verify(unit_dir: Path, names: list[str]) -> None:
    """`systemd-analyze verify` of the written units: a unit systemd would reject is never enabled."""
    proc = subprocess.run(["systemd-analyze", "verify", *(str(unit_dir / n) for n in names)],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise ScheduleError("systemd-analyze verify refused the drill units: " + (proc.stderr or proc.stdout).strip())


def schedule(root: Path, *, pattern: str, calendar: str, parallel: int, unit_dir: Path = UNIT_DIR,
             systemctl: Systemctl = _systemctl) -> tuple[str, str]:
    """Install (or replace) the timer; (timer unit, normalised calendar). Nothing is left half-written:
    on a failure the units are removed again."""
    normal = check_calendar(calendar)
    units = render(root, pattern=pattern, calendar=normal, parallel=parallel)
    written: list[Path] = []
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        for fname, text in units.items():
            path = unit_dir / fname
            tmp = unit_dir / f".{fname}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            written.append(path)
        verify(unit_dir, list(units))
        timer = next(n for n in units if n.endswith(".timer"))
        for args in (["daemon-reload"], ["enable", "--now", timer]):
            code, out = systemctl(args)
            if code != 0:
                raise ScheduleError(f"systemctl {' '.join(args)} failed: {out or f'exit {code}'} (the drill "
                                    "schedule needs systemd running on this controller, and root)")
    except OSError as exc:
        _remove(written)
        raise ScheduleError(f"cannot write the drill units in {unit_dir}: {exc.strerror or exc} "
                            "(run as root)") from None
    except ScheduleError:
        _remove(written)
        raise
    return timer, normal


def unschedule(root: Path, *, unit_dir: Path = UNIT_DIR, systemctl: Systemctl = _systemctl) -> bool:
    """Remove the timer and service; False when there was none."""
    name = unit_name(root)
    paths = [unit_dir / f"{name}.timer", unit_dir / f"{name}.service"]
    if not any(p.exists() for p in paths):
        return False
    systemctl(["disable", "--now", f"{name}.timer"])
    _remove(paths)
    systemctl(["daemon-reload"])
    return True


def _remove(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
