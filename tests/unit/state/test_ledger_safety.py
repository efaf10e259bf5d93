"""The ledger stores no secret and survives damaged lines (issue 12: ledger `detail`, corrupted state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omldeploy.ops import upgrade
from omldeploy.ops.converge import redactor
from omldeploy.state import ledger
from tests.unit.conftest import MakeTenant


def _rec(action: str = "install", detail: str = "", **kw: object) -> ledger.Record:
    return ledger.Record(action=action, outcome="ok", started=ledger.now(), duration=1.0,
                         versions={"omnileads_img": "1"}, detail=detail, **kw)  # type: ignore[arg-type]


def test_detail_and_extra_are_redacted(make_tenant: MakeTenant) -> None:
    password = "pw with%20 spaces&x"
    tenant = make_tenant("aio", vars={"postgres_password": password})
    ledger.append(tenant.folder, _rec(detail=f"psql failed: password authentication for {password}",
                                      extra={"steps": [{"out": "dsn=postgresql://u:pw%20with%2520%20spaces%26x@h"}]}),
                  redact=redactor(tenant))
    text = ledger.ledger_path(tenant.folder).read_text()
    assert password not in text and "pw%20with%2520" not in text
    rec = ledger.read(tenant.folder)[-1]
    assert rec.detail == "psql failed: password authentication for ***"


def test_every_writer_must_give_a_redactor(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ledger.append(tmp_path, _rec())  # type: ignore[call-arg]


@pytest.mark.parametrize("damage", [
    '{"action": "install", "outcome": "ok", "sta',  # truncated by a crash mid-write
    "\x00\x00\x00garbage\xff",
    "[1, 2, 3]",
    '{"unexpected": "field"}',
    '{"action": "install", "outcome": "ok", "started": "t", "duration": 1, "versions": "not a map"}',
])
def test_a_damaged_line_is_skipped_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                damage: str) -> None:
    ledger.append(tmp_path, _rec(), redact=str)
    with ledger.ledger_path(tmp_path).open("ab") as fh:
        fh.write(damage.encode("utf-8", "surrogateescape") + b"\n")
    ledger.append(tmp_path, _rec(action="upgrade"), redact=str)
    damaged: list[ledger.Damaged] = []
    assert [r.action for r in ledger.read(tmp_path, damaged)] == ["install", "upgrade"]
    assert [d.line for d in damaged] == [2]
    # readers that do not ask still work, and the operator is told which line
    assert len(upgrade.history(tmp_path)) == 1
    assert "ledger.jsonl: line 2 is damaged" in capsys.readouterr().err
