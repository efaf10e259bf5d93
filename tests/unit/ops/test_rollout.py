"""`omldeploy fleet upgrade`: waves, the canary's brake, resume, and what is written; each tenant's upgrade
is replaced by a fake that records itself in the tenant's ledger as the real one does (real upgrades of
several tenants in waves: tests/e2e/test_fleet.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.inventory.model import Tenant
from omldeploy.ops import rollout as rollout_op
from omldeploy.ops.converge import Reporter
from omldeploy.state import ledger
from tests.unit.conftest import MakeTenant


@pytest.mark.parametrize("spec, count, sizes", [
    ("1,10%,rest", 25, [1, 3, 21]),
    ("1,10%,rest", 1, [1]),
    ("1,10%,rest", 2, [1, 1]),
    ("2,2", 10, [2, 2]),
    ("rest", 7, [7]),
    ("50%,rest", 3, [2, 1]),
    ("1,1,rest", 0, []),
])
def test_waves_are_cut_from_the_spec(spec: str, count: int, sizes: list[int]) -> None:
    assert rollout_op.parse_waves(spec, count) == sizes


@pytest.mark.parametrize("spec, message", [
    ("rest,1", "'rest' can only be the last wave"),
    ("0", "'0' is not a wave"),
    ("x", "'x' is not a wave"),
    ("", "give 1 to 100 waves"),
    ("101%", "'101%' is not a wave"),
    ("1,,rest", "'' is not a wave"),
])
def test_a_bad_wave_spec_is_refused(spec: str, message: str) -> None:
    with pytest.raises(rollout_op.RolloutError, match=message):
        rollout_op.parse_waves(spec, 10)


class FakeUpgrades:
    """Upgrades that record themselves in the tenant's ledger like the real one: ok → an `upgrade` record
    with the new versions; failed → a failed `upgrade` and the automatic `rollback`."""

    def __init__(self, failing: set[str] | None = None, delay: float = 0.0) -> None:
        self.failing = failing or set()
        self.calls: list[str] = []
        self.delay = delay
        self.live = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, tenant: Tenant, reporter: Reporter, release: str | None, backup: bool) -> int:
        with self._lock:
            self.calls.append(tenant.name)
            self.live += 1
            self.peak = max(self.peak, self.live)
        try:
            time.sleep(self.delay)
            reporter.line("version changes: omnileads_version A -> B")
            if tenant.name in self.failing:
                pw = tenant.settings.text("postgres_password")
                reporter.line(f"omnileads: health gate failed: login with {pw} refused")
                reporter.line("upgrade FAILED a health gate: rolling back automatically to the previous versions")
                reporter.line("rolled back: every component runs the previous versions and is healthy.")
                _deployed(tenant, "upgrade", "failed", {"omnileads_version": "B"})
                _deployed(tenant, "rollback", "ok", dict(tenant.versions))
                return 1
            _deployed(tenant, "upgrade", "ok", dict(tenant.versions))
            return 0
        finally:
            with self._lock:
                self.live -= 1


def _deployed(tenant: Tenant, action: str, outcome: str, versions: dict[str, str]) -> None:
    ledger.append(tenant.folder, ledger.Record(action=action, outcome=outcome, started=ledger.now(), duration=1.0,
                                               versions=versions), redact=lambda s: s)


@pytest.fixture
def fleet(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Tenant]]:
    """Seven AIO tenants on their own hosts, deployed with older versions (the inventories name newer ones)."""
    tenants = {}
    for i, name in enumerate(("t01", "t02", "t03", "t04", "t05", "t06", "t07"), 2):
        addr = f"10.20.0.{i}"
        t = make_tenant("aio", name=name, hosts={"omnileads_aio": {"ansible_host": addr, "omni_ip_lan": addr}})
        _deployed(t, "install", "ok", {**t.versions, "omnileads_version": "older"})
        tenants[name] = t
    return tenants["t01"].folder.parent, tenants


def _cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fleet", "upgrade", "--instances", str(root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_prints_the_waves_and_writes_nothing(fleet: tuple[Path, dict[str, Tenant]],
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, tenants = fleet
    fake = FakeUpgrades()
    monkeypatch.setattr(rollout_op, "real_upgrade", fake)
    _deployed(tenants["t03"], "upgrade", "ok", dict(tenants["t03"].versions))  # already at the target
    (root / "broken").mkdir()
    (root / "broken" / "inventory.yml").write_text("all:\n  vars: [unclosed\n")
    code, out, _ = _cli(root, capsys, "--check", "--waves", "1,2,rest")
    assert code == 0 and fake.calls == []
    assert not (root / ".omldeploy").exists()
    lines = {line.split()[1]: line.split() for line in out.splitlines()[2:] if len(line.split()) > 2}
    assert [lines[n][0] for n in ("t01", "t02", "t04", "t05", "t06", "t07")] == ["1", "2", "2", "3", "3", "3"]
    assert lines["t03"][:3] == ["-", "t03", "already"] and lines["broken"][:3] == ["-", "broken", "excluded"]
    assert "omnileads_version older -> " in out and "--check: nothing was done" in out
    code, out, _ = _cli(root, capsys, "--check", "--json")
    plan = json.loads(out)
    assert plan["todo"] == ["t01", "t02", "t04", "t05", "t06", "t07"]
    assert [len(w) for w in plan["rollout"]["waves"]] == [1, 1, 4]  # 1, 10% of 6 = 1, rest


def test_a_failed_canary_halts_the_rollout_and_resume_finishes_it(fleet: tuple[Path, dict[str, Tenant]],
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, tenants = fleet
    fake = FakeUpgrades(failing={"t01"})
    monkeypatch.setattr(rollout_op, "real_upgrade", fake)
    code, out, _ = _cli(root, capsys)
    assert code == 1 and fake.calls == ["t01"]  # nobody after the canary
    assert "wave 1/3 (canary): 1 tenant(s): t01" in out and "t01: FAILED after" in out
    assert "rolled back: every component runs the previous versions" in out and "HALTED" in out
    assert "omldeploy fleet upgrade --resume" in out
    secret = tenants["t01"].settings.text("postgres_password")
    state_files = list((root / ".omldeploy" / "rollouts").glob("*.json"))
    assert len(state_files) == 1 and state_files[0].stat().st_mode & 0o777 == 0o600
    for text in (out, state_files[0].read_text(), (root / ".omldeploy/ledger.jsonl").read_text(),
                 *(p.read_text() for p in (root / ".omldeploy/rollouts").glob("*.log"))):
        assert secret not in text
    state = json.loads(state_files[0].read_text())
    assert state["status"] == "halted" and state["entries"]["t01"]["state"] == "failed"
    assert all(state["entries"][n]["state"] == "pending" for n in ("t02", "t03", "t07"))
    record = ledger.read(root)[-1]
    assert record.action == "fleet-upgrade" and record.outcome == "halted" and record.extra["failed"] == ["t01"]

    # a new rollout is refused while this one is unfinished
    code, _, err = _cli(root, capsys, "--release", "1.27.1")
    assert code == 2 and "is halted with 7 tenant(s) left: go on with --resume" in err
    # the cause is fixed: resume retries the canary, then the other waves
    fake.failing.clear()
    code, out, _ = _cli(root, capsys, "--resume", "--parallel", "3")
    assert code == 0, out
    assert fake.calls[0] == "t01" and fake.calls[1] == "t01" and sorted(fake.calls[2:]) == [
        "t02", "t03", "t04", "t05", "t06", "t07"]
    assert "rollout" in out and "done: 7 upgraded" in out
    assert json.loads(state_files[0].read_text())["status"] == "done"
    # finished: a new run finds every tenant at the target
    code, out, _ = _cli(root, capsys)
    assert code == 0 and "nothing to upgrade" in out and len(fake.calls) == 8
    code, _, err = _cli(root, capsys, "--resume")
    assert code == 2 and "no unfinished rollout to resume" in err


def test_failures_within_the_budget_go_on_and_are_retried_on_resume(fleet: tuple[Path, dict[str, Tenant]],
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = fleet
    fake = FakeUpgrades(failing={"t03"})
    monkeypatch.setattr(rollout_op, "real_upgrade", fake)
    code, out, _ = _cli(root, capsys, "--waves", "1,rest", "--max-failures", "1")
    assert code == 1 and sorted(fake.calls) == ["t01", "t02", "t03", "t04", "t05", "t06", "t07"]
    assert "ended with failures within the budget" in out and "Failed: t03" in out
    fake.calls.clear()
    fake.failing.clear()
    code, out, _ = _cli(root, capsys, "--resume")
    assert code == 0 and fake.calls == ["t03"]


def test_a_halt_stops_new_starts_within_the_wave(fleet: tuple[Path, dict[str, Tenant]],
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = fleet
    fake = FakeUpgrades(failing={"t01", "t02"}, delay=0.2)
    monkeypatch.setattr(rollout_op, "real_upgrade", fake)
    code, _, _ = _cli(root, capsys, "--waves", "rest", "--parallel", "2")
    assert code == 1 and fake.peak == 2
    assert sorted(fake.calls) == ["t01", "t02"]  # both failed together; nobody else was started
    rollout = rollout_op.unfinished(root)
    assert rollout is not None and rollout.count("pending") == 5


def test_one_tenants_crash_or_busy_lock_is_its_failure_not_the_rollouts(
        fleet: tuple[Path, dict[str, Tenant]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = fleet

    def crashing(tenant: Tenant, reporter: Reporter, release: str | None, backup: bool) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(rollout_op, "real_upgrade", crashing)
    code, out, _ = _cli(root, capsys)
    assert code == 1 and "t01: FAILED" in out and "internal error (RuntimeError)" in out
    assert rollout_op.unfinished(root) is not None
    code, out, _ = _cli(root, capsys, "--abandon")
    assert code == 0 and "abandoned" in out and rollout_op.unfinished(root) is None
    assert ledger.read(root)[-1].outcome == "abandoned"


@pytest.mark.parametrize("args, message", [
    (["--release", "9.9.9"], "release '9.9.9' is not in the catalog"),
    (["--release", "2.2.2"], "cannot be deployed"),
    (["--tenants", "zz*"], "no tenant matching 'zz*'"),
    (["--waves", "rest,1"], "'rest' can only be the last wave"),
    (["--max-failures", "-1"], "is not a count"),
    (["--abandon"], "no unfinished rollout to abandon"),
])
def test_bad_requests_exit_2_and_do_nothing(fleet: tuple[Path, dict[str, Tenant]], capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    root, _ = fleet
    fake = FakeUpgrades()
    monkeypatch.setattr(rollout_op, "real_upgrade", fake)
    code, _, err = _cli(root, capsys, *args)
    assert code == 2 and message in err and fake.calls == []
    assert not (root / ".omldeploy" / "rollouts").exists()


def test_a_release_rollout_targets_the_release_tags(fleet: tuple[Path, dict[str, Tenant]],
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = fleet
    seen: list[str | None] = []

    def fake(tenant: Tenant, reporter: Reporter, release: str | None, backup: bool) -> int:
        seen.append(release)
        assert backup is False
        return 0

    monkeypatch.setattr(rollout_op, "real_upgrade", fake)
    code, out, err = _cli(root, capsys, "--release", "1.26.0", "--tenants", "t0[12]", "--no-backup")
    assert code == 0 and seen == ["1.26.0", "1.26.0"] and "release 1.26.0" in out
    assert "WITHOUT a pre-upgrade backup" in err
    assert "omnileads_version older -> 1.26.0" in out
