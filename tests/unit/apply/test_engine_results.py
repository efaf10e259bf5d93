"""How the engine reads Ansible's events (issue 12, H1): a host that produced no result is a failure,
the arguments files stay private and are named without host names, an unreachable host's reason shows,
and `status` is not "all healthy" for a host that reports no units."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from omldeploy.apply import engine
from omldeploy.apply.engine import HostResult, RunResult, phase_steps, run_steps
from omldeploy.ops import converge
from omldeploy.ops.converge import Reporter
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant


class FakeRunner:
    """Stands in for ansible_runner.run: records what the engine prepared, then replays `events`."""

    def __init__(self, events: list[dict[str, Any]], rc: int = 0) -> None:
        self.events, self.rc = events, rc
        self.seen: dict[str, Any] = {}

    def __call__(self, *, private_data_dir: str, event_handler: Any, **_kw: Any) -> Any:
        root = Path(private_data_dir)
        argdir = root / "args"
        self.seen = {
            "root": root, "root_mode": stat.S_IMODE(root.stat().st_mode),
            "files": {p.name: stat.S_IMODE(p.stat().st_mode) for p in argdir.iterdir()},
            "inventory": yaml.load((root / "inventory/hosts.yml").read_text(), Loader=yaml.BaseLoader),
        }
        for e in self.events:
            event_handler(e)
        return type("R", (), {"rc": self.rc, "stdout": None})()


def ev(kind: str, host: str, task: str, res: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task": task, "res": res or {}}}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    import ansible_runner  # type: ignore[import-untyped,unused-ignore]

    def install(events: list[dict[str, Any]], rc: int = 0) -> FakeRunner:
        runner = FakeRunner(events, rc)
        monkeypatch.setattr(ansible_runner, "run", runner)
        return runner

    return install


def test_a_host_that_produced_no_result_fails_the_run(make_tenant: MakeTenant, fake: Any) -> None:
    tenant = make_tenant("ait")
    steps = phase_steps(tenant, render_tenant(tenant), ["stage"])
    answered = ["omnileads_data", "omnileads_voice"]  # omnileads_app: Ansible ran nothing on it
    runner = fake([ev("runner_on_ok", h, t, {"omldeploy_r0.report": {"changed_files": []}} if t.endswith("report")
                      else {}) for h in answered for t in ("stage reach", "stage", "stage report")])
    lines: list[tuple[str, str, str, str]] = []
    result = run_steps(tenant, steps, progress=lambda *a: lines.append(a))
    assert not result.ok
    app = result.hosts["omnileads_app"]
    assert app.error and "no result" in app.error and "nothing was checked or changed" in app.error
    assert all(result.hosts[h].error is None for h in answered)
    assert ("omnileads_app", "run", "failed", app.error) in lines
    # the arguments (every rendered file, secrets included): private folder, names from no host name,
    # removed afterwards
    assert runner.seen["root_mode"] == 0o700
    assert runner.seen["files"] == {"h0.0.json": 0o600, "h1.0.json": 0o600, "h2.0.json": 0o600}
    hosts = runner.seen["inventory"]["all"]["hosts"]
    assert [hosts[h]["omldeploy_slot"] for h in ("omnileads_data", "omnileads_voice", "omnileads_app")] == \
        ["h0", "h1", "h2"]
    assert not runner.seen["root"].exists()


def test_every_host_answering_is_ok(make_tenant: MakeTenant, fake: Any) -> None:
    tenant = make_tenant("aio")
    steps = phase_steps(tenant, render_tenant(tenant), ["status"])
    fake([ev("runner_on_ok", "omnileads_aio", "status report", {"omldeploy_r0.report": {"units": []}})])
    assert run_steps(tenant, steps).ok


def test_a_failure_elsewhere_is_not_blamed_on_hosts_a_fatal_stop_never_reached(make_tenant: MakeTenant,
                                                                              fake: Any) -> None:
    tenant = make_tenant("ait")
    steps = phase_steps(tenant, render_tenant(tenant), ["stage"])
    fake([ev("runner_on_unreachable", "omnileads_data", "stage reach",
             {"msg": "Failed to connect to the host via ssh: ssh: connect to host 10.10.10.2 port 22: "
                     "Connection refused"})], rc=4)
    result = run_steps(tenant, steps)
    data = result.hosts["omnileads_data"]
    assert not result.ok and data.unreachable and "Connection refused" in (data.error or "")
    assert result.hosts["omnileads_app"].error is None  # the run's error is the unreachable host


def test_an_unreachable_reason_is_not_censored(make_tenant: MakeTenant) -> None:
    """The reason comes from the visible ping, not from the no_log stage task."""
    tenant = make_tenant("aio")
    steps = phase_steps(tenant, render_tenant(tenant), ["stage"])
    play = engine._playbook(steps)[0]
    reach, stage = play["tasks"][0], play["tasks"][1]
    assert reach["name"] == "stage reach" and "no_log" not in reach and stage["no_log"] is True


def test_status_with_no_units_where_units_belong_is_not_healthy(make_tenant: MakeTenant,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = make_tenant("aio")
    empty = RunResult(ok=True, check=False, duration=0.1,
                      hosts={"omnileads_aio": HostResult("omnileads_aio", {"status": {"units": []}})})
    monkeypatch.setattr(converge, "run_phases", lambda *a, **k: empty)
    code, data = converge.status(tenant, Reporter(say=print, warn=print))
    assert code == 1 and data["healthy"] is False
    assert "no unit reported" in data["hosts"]["omnileads_aio"]["error"]



def test_each_module_task_keeps_its_span_on_the_controller_clock(make_tenant: MakeTenant, fake: Any) -> None:
    """A restore's outage is told from these spans: the first start and last end of a step per host."""
    tenant = make_tenant("aio")
    steps = phase_steps(tenant, render_tenant(tenant), ["stage"])

    def timed(task: str, start: str, end: str, duration: float) -> dict[str, Any]:
        e = ev("runner_on_ok", "omnileads_aio", task)
        e["event_data"].update(start=start, end=end, duration=duration)
        return e

    fake([timed("stage", "2026-12-03T20:00:01.500000", "2026-12-03T20:00:03.000000", 1.5),
          timed("stage", "2026-12-03T20:00:04.000000", "2026-12-03T20:00:04.250000", 0.25),  # asked again
          timed("stage report", "2026-12-03T20:00:05", "2026-12-03T20:00:09", 4.0),  # a companion task: not it
          ev("runner_on_ok", "omnileads_aio", "stage report", {"omldeploy_r0.report": {"changed_files": []}})])
    host = run_steps(tenant, steps).hosts["omnileads_aio"]
    start, end = host.spans["stage"]
    assert end - start == pytest.approx(2.75)
    assert host.walls["stage"] == pytest.approx(1.75)
