"""`omldeploy fleet status|drift` over tenant folders, with simulated hosts (the real ones: tests/e2e)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from omldeploy.apply.engine import RunResult, Step
from omldeploy.cli.main import main
from omldeploy.inventory.model import Tenant
from omldeploy.ops import fleet as fleet_op
from omldeploy.sandbox.simulated import Condition, SimulatedHosts
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from tests.unit.conftest import MakeTenant


def _record(tenant: Tenant, action: str, outcome: str, days_ago: float = 0.0) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - days_ago * 86400))
    ledger.append(tenant.folder, ledger.Record(action=action, outcome=outcome, started=started, duration=1.0,
                                               versions={}), redact=lambda s: s)


@pytest.fixture
def fleet(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, SimulatedHosts]:
    good = make_tenant("aio", name="good")
    _record(good, "install", "ok", 3)
    _record(good, "restore", "ok", 2)
    stopped = make_tenant("aio", name="stopped")
    _record(stopped, "restore", "ok", 1)
    make_tenant("aio", name="slow")
    failed = make_tenant("ait", name="failed")
    _record(failed, "restore", "ok", 1)
    _record(failed, "upgrade", "failed", 0.1)
    bad = good.folder.parent / "bad"
    bad.mkdir()
    (bad / "inventory.yml").write_text("all:\n  vars:\n    bogus_key: [1\n")
    sim = SimulatedHosts({
        "stopped": Condition(stopped=("redis",)),
        "slow": Condition(timeout=True),
        "failed": Condition(edited=(), backup_age_s=5 * 86400),
    })
    monkeypatch.setattr(fleet_op, "real_runner", sim)
    return good.folder.parent, sim


def _status(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["fleet", "status", "--instances", str(root), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_fleet_status_flags_each_tenant_for_its_own_reason(fleet: tuple[Path, SimulatedHosts],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root, sim = fleet
    code, data = _status(root, capsys)
    assert code == 1
    rows = {r["tenant"]: r for r in data["tenants"]}
    assert [r["tenant"] for r in data["tenants"]] == ["bad", "failed", "good", "slow", "stopped"]
    good = rows["good"]
    assert good["health"] == "healthy" and good["drift"] == 0 and good["attention"] == []
    assert good["layout"] == "aio" and good["omlapp"] and good["backup_age_hours"] == 1.0
    assert good["proof_age_days"] == 2.0 and good["last_op"]["action"] == "restore"
    assert good["cert_days_left"] is not None and good["cert_days_left"] > 700
    assert rows["stopped"]["health"] == "UNHEALTHY"
    assert any("redis: inactive (dead), should run" in a for a in rows["stopped"]["attention"])
    assert rows["slow"]["health"] == "timeout" and rows["slow"]["drift"] is None
    assert rows["bad"]["health"] == "invalid" and not rows["bad"]["valid"]
    assert "omldeploy validate --tenant bad" in rows["bad"]["attention"][0]
    failed = rows["failed"]
    assert failed["health"] == "healthy"
    assert "last operation failed: upgrade" in "; ".join(failed["attention"])
    assert "last backup is 120 h old (limit 48 h)" in failed["attention"]
    assert data["summary"] == {**data["summary"], "tenants": 5, "attention": 4}
    assert sim.runs == 4  # every valid tenant read once: drift, status and catalog in one run


def test_a_busy_tenant_is_reported_not_read(fleet: tuple[Path, SimulatedHosts],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root, sim = fleet
    with tenant_lock(root / "good", "good", "upgrade"):
        code, data = _status(root, capsys, "--tenants", "g*")
    row = data["tenants"][0]
    assert row["health"] == "busy" and row["busy"].startswith("upgrade by ") and row["attention"] == []
    assert code == 0 and sim.runs == 0


def test_the_text_table_and_exit_zero_when_all_is_well(fleet: tuple[Path, SimulatedHosts],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = fleet
    code = main(["fleet", "status", "--instances", str(root), "--tenants", "good"])
    out = capsys.readouterr().out
    assert code == 0
    header, _, line = out.splitlines()[:3]
    assert header.split()[:5] == ["tenant", "layout", "omlapp", "health", "drift"]
    assert line.split()[:2] == ["good", "aio"] and "healthy" in line.split() and "1h" in line
    assert "1 tenant(s): healthy 1; 0 need(s) attention" in out


def test_without_hosts_nothing_is_run_and_what_the_controller_knows_is_shown(
        fleet: tuple[Path, SimulatedHosts], capsys: pytest.CaptureFixture[str]) -> None:
    root, sim = fleet
    code, data = _status(root, capsys, "--no-hosts", "--no-backups")
    assert sim.runs == 0
    rows = {r["tenant"]: r for r in data["tenants"]}
    assert rows["good"]["health"] == "not checked" and rows["good"]["attention"] == []
    assert code == 1 and rows["failed"]["attention"] == ["last operation failed: upgrade at "
                                                         + rows["failed"]["last_op"]["started"]]


def test_reads_run_at_most_parallel_at_a_time(fleet: tuple[Path, SimulatedHosts],
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root, sim = fleet
    live, peak, lock = [0], [0], threading.Lock()

    def counted(tenant: Tenant, steps: list[Step], timeout: int) -> RunResult:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.2)
        try:
            return sim(tenant, steps, timeout)
        finally:
            with lock:
                live[0] -= 1

    monkeypatch.setattr(fleet_op, "real_runner", counted)
    _status(root, capsys, "--parallel", "2")
    assert peak[0] == 2
    live[0] = peak[0] = 0
    _status(root, capsys, "--parallel", "8")
    assert peak[0] == 4  # the four valid tenants at once


def test_what_hosts_said_is_redacted(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    tenant = make_tenant("aio", name="leaky")
    secret = tenant.settings.text("postgres_password")

    def leaking(t: Tenant, steps: list[Step], timeout: int) -> RunResult:
        res = SimulatedHosts({t.name: Condition(unreachable=True)})(t, steps, timeout)
        for h in res.hosts.values():
            h.error = f"ssh: login failed for password {secret}"
        return res

    monkeypatch.setattr(fleet_op, "real_runner", leaking)
    code = main(["fleet", "status", "--instances", str(tenant.folder.parent)])
    out = capsys.readouterr()
    assert code == 1 and "unreachable" in out.out
    assert secret not in out.out + out.err


@pytest.mark.parametrize("args, message", [
    (["--tenants", "nomatch*"], "no tenant matching 'nomatch*' in"),
    (["--parallel", "0"], "0 is out of range (allowed: 1..256)"),
    (["--parallel", "x"], "'x' is not a number"),
    (["--timeout", "-1"], "out of range"),
])
def test_bad_options_exit_2_with_a_clear_message(fleet: tuple[Path, SimulatedHosts],
                                                 capsys: pytest.CaptureFixture[str], args: list[str],
                                                 message: str) -> None:
    root, sim = fleet
    assert main(["fleet", "status", "--instances", str(root), *args]) == 2
    assert message in capsys.readouterr().err and sim.runs == 0


def test_fleet_drift_names_each_tenants_differences(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    same = make_tenant("aio", name="same")
    edited = make_tenant("aio", name="edited")
    from omldeploy.render.build import render_tenant

    path = next(u for u in render_tenant(edited).hosts[0].units if u.name == "nginx").files[0]
    sim = SimulatedHosts({"edited": Condition(edited=(path,))})
    monkeypatch.setattr("omldeploy.ops.drift.run_steps", lambda t, steps, **kw: sim(t, steps, kw["timeout"]))
    code = main(["fleet", "drift", "--instances", str(same.folder.parent), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["summary"] == {"tenants": 2, "drifted": 1}
    rows = {d["tenant"]: d for d in data["tenants"]}
    assert not rows["same"]["drifted"]
    assert [f["what"] for f in rows["edited"]["findings"]] == [path]
    code = main(["drift", "--instances", str(same.folder.parent), "--tenant", "edited"])
    out = capsys.readouterr().out
    assert code == 1 and path in out and "nothing was changed" in out
    assert main(["drift", "--instances", str(same.folder.parent), "--tenant", "same"]) == 0
