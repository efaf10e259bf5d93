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
