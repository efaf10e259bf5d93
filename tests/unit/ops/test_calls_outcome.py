"""What `install`/`restart*` say after the wait for calls (issue 14, item 6): a deadline that passed and
calls that could not be counted are warnings naming the host and the units; a clean wait says nothing."""

from __future__ import annotations

from omldeploy.apply.engine import HostResult, RunResult
from omldeploy.ops.converge import Reporter, _calls_outcome


def _warnings(reports: dict[str, dict[str, object]]) -> list[str]:
    warned: list[str] = []
    result = RunResult(ok=True, check=False, duration=1.0, hosts={"voice": HostResult("voice", reports)})
    _calls_outcome(result, Reporter(say=lambda _t: None, warn=warned.append))
    return warned


def test_a_passed_deadline_names_the_calls_dropped() -> None:
    warned = _warnings({"calls": {"needed": True, "restarting": ["asterisk"], "channels": 3, "waiting": True}})
    assert warned == ["voice: 3 channel(s) still up when voice_drain_timeout ran out: asterisk restarted anyway, "
                      "dropping them"]


def test_calls_that_could_not_be_counted_at_stage_are_said() -> None:
    stage = {"calls": {"needed": True, "restarting": ["asterisk", "rtpengine"], "channels": None,
                       "error": "PermissionError: AMI refused the login"}}
    assert _warnings({"stage": stage}) == ["voice: the calls could not be counted (PermissionError: AMI refused the "
                                           "login); asterisk, rtpengine restarted without waiting"]


def test_a_clean_wait_or_nothing_to_wait_for_says_nothing() -> None:
    assert _warnings({"calls": {"needed": True, "restarting": ["asterisk"], "channels": 0, "done": True}}) == []
    assert _warnings({"stage": {"calls": {"needed": False, "done": True}}}) == []
    assert _warnings({}) == []
