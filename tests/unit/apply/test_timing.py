"""Where a run's time went (issue 14, item 1): the host module's clock, the engine's wall times from
Ansible's events, the per-host breakdown, its text, and `omldeploy history` reading it from the ledger."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from omldeploy.apply.engine import HostResult, RunResult, _EventHandler
from omldeploy.apply.timing import REACH, breakdown, describe, phase_sums
from omldeploy.cli.main import main
from omldeploy.state import ledger
from tests.hostmodules import load

from ..conftest import MakeTenant

UTILS = Path(__file__).resolve().parents[3] / "src/omldeploy/apply/ansible/module_utils/omldeploy_timing.py"


def clock_module() -> ModuleType:
    return load("omldeploy_timing_unit", UTILS)


def test_the_host_clock_times_blocks_even_when_they_fail() -> None:
    clock = clock_module().Clock()
    with clock.timed("pull", "docker.io/x:1") as row:
        time.sleep(0.05)
        row["bytes"] = 1234
    with pytest.raises(RuntimeError), clock.timed("start", "nginx"):
        time.sleep(0.02)
        raise RuntimeError("refused")
    clock.add("health", "nginx", 1.23456)
    assert [(r["phase"], r["what"]) for r in clock.rows] == [("pull", "docker.io/x:1"), ("start", "nginx"),
                                                             ("health", "nginx")]
    assert clock.rows[0]["bytes"] == 1234 and 0.05 <= clock.rows[0]["seconds"] < 1
    assert 0.02 <= clock.rows[1]["seconds"] < 1 and clock.rows[2]["seconds"] == 1.235
    assert clock.total() >= 0.07


def _event(kind: str, host: str, task: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task": task, **data}}


def test_the_engine_keeps_the_module_tasks_wall_time_only() -> None:
    result = RunResult(ok=True, check=False, duration=9.0, hosts={"app": HostResult("app")})
    handle = _EventHandler(result, None, None)
    handle(_event("runner_on_ok", "app", "stage reach", duration=0.4))  # the ping of a secret step
    handle(_event("runner_on_ok", "app", "stage", duration=6.5))
    handle(_event("runner_on_ok", "app", "stage report", duration=0.1,
                  res={"omldeploy_r0.report": {"seconds": 5.0, "timings": [
                      {"phase": "pull", "what": "img", "seconds": 4.0, "bytes": 50_000_000},
                      {"phase": "files", "what": "40 compared", "seconds": 0.5}]}}))
    handle(_event("runner_on_failed", "app", "activate-2", duration=3.0))
    assert result.hosts["app"].walls == {"stage": 6.5, "activate-2": 3.0}

    record = breakdown(result)
    assert record["total"] == 9.0
    stage, activate = record["steps"]
    assert (stage["host"], stage["step"], stage["wall"]) == ("app", "stage", 6.5)
    assert [(r["phase"], r["seconds"]) for r in stage["rows"]] == [("pull", 4.0), ("files", 0.5), (REACH, 1.5)]
    assert activate["rows"] == []  # a failed activate reported nothing: its wall time stays, unexplained


def test_phase_sums_and_text_name_the_largest_first() -> None:
    rows = [{"phase": "health", "what": "postgresql", "seconds": 4.0}, {"phase": "start", "what": "redis",
                                                                       "seconds": 0.5},
            {"phase": "health", "what": "redis", "seconds": 1.0}, {"phase": "pull", "what": "a", "seconds": 2.0,
                                                                    "bytes": 30_000_000}]
    sums = phase_sums(rows)
    assert [(name, total) for name, total, _ in sums] == [("health", 5.0), ("pull", 2.0), ("start", 0.5)]
    assert sums[0][2] == [("postgresql", 4.0), ("redis", 1.0)]
    lines = describe({"total": 12.0, "steps": [{"host": "aio", "step": "activate", "wall": 7.5, "rows": rows}]})
    assert lines[0].startswith("where the time went (12.0 s in all")
    assert "aio" in lines[1] and "7.5 s" in lines[1]
    assert "health 5.0 (postgresql 4.0, redis 1.0); pull 2.0 (a 2.0, 30 MB); start 0.5 (redis 0.5)" in lines[1]
    assert describe(None) == ["no timing recorded for this run"]


def _record(action: str, outcome: str, timings: dict[str, Any] | None) -> ledger.Record:
    return ledger.Record(action=action, outcome=outcome, started="2026-12-03T10:00:00+0000", duration=12.5,
                         versions={}, hosts=["aio"], changed=3, restarted=["aio:nginx"],
                         extra={"timings": timings} if timings else {})


def test_history_shows_the_last_runs_with_their_breakdown(make_tenant: MakeTenant,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    t = make_tenant("aio")
    timing = {"total": 12.5, "steps": [{"host": "aio", "step": "stage", "wall": 4.0,
                                        "rows": [{"phase": "pull", "what": "img", "seconds": 3.0, "bytes": 7e6}]}]}
    for i in range(12):
        ledger.append(t.folder, _record("install" if i % 2 else "backup", "ok", timing if i > 9 else None),
                      redact=lambda s: s)
    with (t.folder / ".omldeploy" / "ledger.jsonl").open("a") as fh:
        fh.write("{not json\n")  # a damaged line is skipped and named, never a crash
    inst = str(t.folder.parent)
    assert main(["--instances", inst, "history", "--tenant", t.name, "--last", "3"]) == 0
    out, err = capsys.readouterr()
    runs = [ln for ln in out.splitlines() if ln.startswith("2026")]
    assert len(runs) == 3 and "install" in runs[-1] and "12.5 s" in runs[-1] and "1 unit(s)" in runs[-1]
    assert "pull 3.0 (img 3.0, 7 MB)" in out
    assert "ledger line 13 is damaged" in err

    assert main(["--instances", inst, "history", "--tenant", t.name, "--action", "install", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in data["runs"]] == ["install"] * 6 and data["damaged_lines"] == [13]
    assert data["runs"][-1]["timings"] == timing and data["runs"][0]["timings"] is None

    assert main(["--instances", inst, "history", "--tenant", t.name, "--last", "0"]) == 2
    assert "--last" in capsys.readouterr().err
