"""`omldeploy backup` with an id the bucket already holds: every host checks in the dump's own round
trip and writes nothing; the controller refuses with exit 2, writes no manifest, and never falls back
to another dump (the HA standby fallback only follows a failed dump)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from omldeploy.ops import backup as bk
from omldeploy.ops.backup_session import OpFailed
from omldeploy.ops.converge import Reporter
from omldeploy.render.backup_target import Target
from tests.unit.conftest import MakeTenant


class FakeSession:
    def __init__(self, tenant: Any, answers: list[Any]) -> None:
        self.tenant = tenant
        self.target = Target(s3={"secret_key": "x", "bucket": "b", "endpoint": "http://s3"}, db_host="omnileads_aio",
                             db={"mode": "exec", "database": "omnileads", "container": "oml-postgresql-server"},
                             files_host="omnileads_aio",
                             files_hosts=("omnileads_aio",), asterisk_container="oml-asterisk-server")
        self.reporter = Reporter(say=lambda _t: None, warn=lambda _t: None)
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def step(self, name: str, calls: dict[str, dict[str, Any]], progress_host: str | None = None) -> Any:
        self.calls.append((name, copy.deepcopy(calls)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.mark.parametrize("standby", [None, "10.0.0.9"])
def test_a_taken_id_is_refused_with_nothing_written(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch,
                                                    standby: str | None) -> None:
    tenant = make_tenant("aio")
    sess = FakeSession(tenant, [{"omnileads_aio": {"exists": ["backup/pgsql-backup-77.dump"], "objects": []}}])
    monkeypatch.setattr(bk, "open_session", lambda _t, _r: sess)
    monkeypatch.setattr(bk, "dump_source", lambda _t: (standby, "the test"))
    lines: list[str] = []
    code, bid = bk.run_backup(tenant, Reporter(say=lines.append, warn=lines.append), backup_id="77")
    assert (code, bid) == (2, None)
    assert [name for name, _ in sess.calls] == ["backup"]  # no manifest, no second dump
    assert sess.calls[0][1]["omnileads_aio"]["ts"] == "77"
    assert any("a backup with id 77 already exists in the bucket (backup/pgsql-backup-77.dump)" in x for x in lines)


def test_the_primary_retry_after_a_failed_standby_dump_does_not_check_the_id_again(
        make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = make_tenant("aio")
    done = {"omnileads_aio": {"objects": [{"key": "backup/pgsql-backup-78.dump", "size": 1, "sha256": "0" * 64,
                                           "kind": "dump-custom"}]}}
    sess = FakeSession(tenant, [OpFailed("omnileads_aio: canceling statement due to conflict with recovery"),
                                done, {"omnileads_aio": {}}])
    monkeypatch.setattr(bk, "open_session", lambda _t, _r: sess)
    monkeypatch.setattr(bk, "dump_source", lambda _t: ("10.0.0.9", "the standby"))
    code, bid = bk.run_backup(tenant, Reporter(say=lambda _t: None, warn=lambda _t: None), backup_id="78")
    assert (code, bid) == (0, "78")
    first, retry = sess.calls[0][1]["omnileads_aio"], sess.calls[1][1]["omnileads_aio"]
    assert first["ts"] == "78" and "ts" not in retry and retry["db"]["mode"] == "exec"
    assert [name for name, _ in sess.calls] == ["backup", "backup", "manifest"]
