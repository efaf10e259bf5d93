"""The host side's unit starts against a stand-in `systemctl` that behaves like systemd's start limit:
a unit in the failed state refuses every start until `reset-failed` clears it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.unit.apply.test_engine_plan import units_module

FAKE = r"""#!/bin/sh
# systemd's start limit as systemctl shows it: a failed unit refuses starts until reset-failed, and the
# refusal is worded like a failed start job; only the unchanged InvocationID shows that nothing ran.
#   failed: in the start limit (cleared by reset-failed)   stuck: refuses even after reset-failed
#   masked: masked unit    crash: every start runs the program, which exits at once
state="$FAKE_STATE"
echo "$*" >> "$state/calls"
case "$1" in
  reset-failed) rm -f "$state/failed"; exit 0 ;;
  start|restart)
    if [ -f "$state/failed" ] || [ -f "$state/stuck" ]; then
      echo "Job for $2 failed because the control process exited with error code." >&2; exit 1
    fi
    if [ -f "$state/masked" ]; then echo "Failed to start $2: Unit $2 is masked." >&2; exit 1; fi
    date +%s%N > "$state/inv"
    if [ -f "$state/crash" ]; then
      echo "Job for $2 failed because the control process exited with error code." >&2; exit 1
    fi
    exit 0 ;;
  is-active)
    if [ -f "$state/crash" ] || [ -f "$state/stuck" ]; then echo failed; exit 3; fi
    echo active; exit 0 ;;
  show)
    if [ -f "$state/crash" ]; then echo "Result=exit-code"; echo "NRestarts=5"; echo "ExecMainStatus=1"; fi
    if [ -f "$state/stuck" ]; then echo "Result=start-limit-hit"; fi
    echo "InvocationID=$(cat "$state/inv" 2>/dev/null)"; exit 0 ;;
esac
exit 0
"""


@pytest.fixture()
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(FAKE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(tmp_path))
    return tmp_path


def test_a_unit_in_the_start_limit_starts_because_the_failed_state_is_cleared_first(fake_systemctl: Path) -> None:
    mod = units_module()
    (fake_systemctl / "failed").touch()
    mod.start_units(["omnileads"], "start")
    calls = [c for c in (fake_systemctl / "calls").read_text().splitlines() if not c.startswith("show")]
    assert calls == ["reset-failed omnileads.service", "start omnileads.service"]


def test_a_start_limit_refusal_is_recognised_although_systemctl_words_it_as_a_failed_job(
        fake_systemctl: Path) -> None:
    mod = units_module()
    (fake_systemctl / "stuck").touch()
    with pytest.raises(mod.StartRefused) as exc:
        mod.start_units(["omnileads"], "start")
    assert "REFUSED to start omnileads.service" in str(exc.value) and "start-limit-hit" in str(exc.value)


def test_a_refused_start_is_told_apart_from_a_failed_start_job(fake_systemctl: Path) -> None:
    mod = units_module()
    (fake_systemctl / "masked").touch()
    with pytest.raises(mod.StartRefused) as exc:
        mod.start_units(["nginx", "omnileads"], "restart")
    assert "REFUSED to restart nginx.service, omnileads.service" in str(exc.value)
    assert "not a slow health check" in str(exc.value)
    (fake_systemctl / "masked").unlink()
    (fake_systemctl / "crash").touch()
    mod.start_units(["nginx"], "start")  # ran and failed: left to the health wait, which says why


def test_the_health_wait_names_a_crash_loop_not_a_timeout(fake_systemctl: Path) -> None:
    mod = units_module()
    (fake_systemctl / "crash").touch()
    unit = {"name": "omnileads", "container": "oml-omnileads-server", "health": {"kind": "tcp", "port": 1,
                                                                                 "timeout": 30}}
    with pytest.raises(mod.HealthError) as exc:
        mod.wait_healthy(unit)
    assert exc.value.kind == "crashed"
    text = str(exc.value)
    assert "crashed 5 times in a row" in text and "start limit" in text
    assert "within" not in text  # not worded as a slow health check


def test_a_slow_health_check_says_so(fake_systemctl: Path) -> None:
    mod = units_module()
    unit = {"name": "nginx", "container": "oml-nginx-server",
            "health": {"kind": "tcp", "host": "127.0.0.1", "port": 1, "timeout": 0}}
    with pytest.raises(mod.HealthError) as exc:
        mod.wait_healthy(unit)
    assert exc.value.kind == "timeout"
    assert "did not become healthy within 0s" in str(exc.value) and "health check did not pass" in str(exc.value)


class Failed(Exception):
    pass


class FakeModule:
    def fail_json(self, **kw: object) -> None:
        raise Failed(kw)


def test_the_run_end_settle_checks_every_watched_unit_once(fake_systemctl: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase `settle` (several tiers): units up long enough are checked without a wait; the newest is
    given SETTLE_SECONDS; a unit that stopped or restarted since its health check fails the run, named,
    and stays pending for the next run."""
    import time

    from tests.unit.apply.test_engine_plan import host_module

    mod = host_module()
    state: dict[str, object] = {}
    monkeypatch.setattr(mod, "check_owner", lambda _t: None)
    monkeypatch.setattr(mod, "load_state", lambda _t: state)
    monkeypatch.setattr(mod, "save_state", lambda _t, s: state.update(s))
    monkeypatch.setattr(mod, "SETTLE_SECONDS", 0.4)
    restarts = mod.n_restarts("omnileads")
    state["settle_watch"] = {"postgresql": {"restarts": restarts, "healthy_at": time.time() - 60}}
    t0 = time.monotonic()
    out = mod.settle_watched(FakeModule(), {"tenant": "t1"})
    assert out["checked"] == ["postgresql"] and time.monotonic() - t0 < 0.3  # up for a minute: no wait
    assert state["settle_watch"] == {}

    state["settle_watch"] = {"omnileads": {"restarts": restarts, "healthy_at": time.time()}}
    t0 = time.monotonic()
    mod.settle_watched(FakeModule(), {"tenant": "t1"})
    assert time.monotonic() - t0 >= 0.35  # just healthy: waited

    state["settle_watch"] = {"nginx": {"restarts": restarts, "healthy_at": time.time() - 60}}
    (fake_systemctl / "crash").touch()
    with pytest.raises(Failed) as exc:
        mod.settle_watched(FakeModule(), {"tenant": "t1"})
    assert "nginx.service became healthy, then stopped or restarted (crash loop)" in str(exc.value)
    assert state["pending"] == ["nginx"] and state["settle_watch"] == {}
    assert mod.settle_watched(FakeModule(), {"tenant": "t1"})["checked"] == []  # nothing left to watch
