"""The restore's outage figure: from the first stop of a database client to the end of the last start,
across hosts (AIT: the app and voice hosts stop, the data host switches, both start again)."""

from __future__ import annotations

import pytest

from omldeploy.apply.engine import HostResult, RunResult
from omldeploy.ops.backup_session import OpFailed, Session
from omldeploy.ops.restore import _outage


def host(name: str, **spans: tuple[float, float]) -> HostResult:
    return HostResult(name, spans=dict(spans))


def test_outage_spans_hosts_from_first_stop_to_last_healthy() -> None:
    run = RunResult(ok=True, check=False, duration=9.0, hosts={
        "omnileads_app": host("omnileads_app", stop=(100.0, 101.0), **{"activate-2": (104.0, 107.5)}),
        "omnileads_voice": host("omnileads_voice", stop=(100.2, 100.9), **{"activate-1": (103.0, 104.0)}),
        "omnileads_data": host("omnileads_data", switch=(101.5, 102.0)),
    })
    assert _outage(run, {"omnileads_app", "omnileads_voice", "omnileads_data"}) == 7.5


def test_no_figure_without_a_stop_or_a_start() -> None:
    run = RunResult(ok=False, check=False, duration=1.0, hosts={
        "omnileads_aio": host("omnileads_aio", stop=(100.0, 101.0))})
    assert _outage(run, {"omnileads_aio"}) is None


def test_a_failed_step_is_named_and_later_steps_have_no_report() -> None:
    failed = HostResult("omnileads_aio", reports={"stop": {"stopped": ["omnileads"]}}, error="cannot switch",
                        failed_step="switch")
    run = RunResult(ok=False, check=False, duration=1.0, hosts={"omnileads_aio": failed})
    sess = Session.__new__(Session)
    with pytest.raises(OpFailed) as exc:
        sess.reports("stop", run)
    assert exc.value.step == "switch" and "omnileads_aio: cannot switch" in str(exc.value)
    ok = RunResult(ok=True, check=False, duration=1.0, hosts={
        "omnileads_aio": HostResult("omnileads_aio", reports={"stop": {"stopped": ["omnileads"]}})})
    assert sess.reports("stop", ok) == {"omnileads_aio": {"stopped": ["omnileads"]}}
    assert sess.reports("files", ok) == {}


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)


@pytest.mark.parametrize(("step", "restarts", "raises"), [
    ("stop", True, True), ("switch", True, True), ("files", True, False), ("media", True, False),
    ("activate", False, False)])
def test_a_failure_inside_the_outage_brings_back_what_it_stopped(monkeypatch: pytest.MonkeyPatch, step: str,
                                                                  restarts: bool, raises: bool) -> None:
    """Before the switch: the scratch database and the staging go, the live system starts again as it
    was. After it: the restored database stays live and what was stopped is started; a failed start is
    said with the command that finishes it."""
    from omldeploy.ops import restore as r

    done: list[str] = []
    monkeypatch.setattr(r, "_quiet", lambda _s, name, _c: done.append(name))
    def start(_s: Session) -> bool:
        done.append("start")
        return True

    monkeypatch.setattr(r, "_start", start)
    sess = Session.__new__(Session)
    sess.reporter = Said()  # type: ignore[assignment]
    sess.target = type("T", (), {"db_host": "omnileads_aio", "db": {}})()
    sess.tenant = type("Tn", (), {"name": "t1"})()
    exc = OpFailed("omnileads_aio: boom", step=step)
    if raises:
        with pytest.raises(OpFailed):
            r._outage_failed(sess, exc, "17", "db__restore", "/etc/asterisk/custom.restore-17", ["omnileads_aio"])
        assert done == ["dropscratch", "unstage", "start"]
        assert "the live database was not replaced" in sess.reporter.lines[0]  # type: ignore[attr-defined]
        return
    assert r._outage_failed(sess, exc, "17", "db__restore", "/x", ["omnileads_aio"]) == 1
    assert done == (["start"] if restarts else [])
    said = "\n".join(sess.reporter.lines)  # type: ignore[attr-defined]
    assert "FAILED: restore of 17: omnileads_aio: boom" in said
    if step == "activate":
        assert "omldeploy install --tenant t1" in said
