"""`omldeploy secrets init|rotate` (issue 12): the move into vault.yml proven by an identical render,
rotation planning (where a secret lives, what restarts, what does not apply) and the resumable state."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from omldeploy.cli.main import main
from omldeploy.inventory import Tenant, load_tenant, vaultsource
from omldeploy.inventory.vault import is_encrypted
from omldeploy.ops import secrets as ops
from omldeploy.ops.converge import Reporter
from omldeploy.render.build import render_tenant
from omldeploy.state import ledger
from tests.unit.conftest import EXAMPLES, fill_placeholders

PASSWORD = b"unit-vault-pass"


def _tenant(tmp_path: Path, layout: str = "aio") -> Tenant:
    folder = tmp_path / "instances" / "t1"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(fill_placeholders((EXAMPLES / f"inventory_{layout}.yml").read_text()))
    (folder / "inventory.yml").chmod(0o600)
    return load_tenant(folder, "t1")


def _password(tmp_path: Path) -> Path:
    path = tmp_path / "vault-pass"
    path.write_bytes(PASSWORD + b"\n")
    vaultsource.configure(file=str(path))
    return path


def _reporter(lines: list[str]) -> Reporter:
    return Reporter(say=lines.append, warn=lines.append)


def test_init_moves_every_password_and_the_render_is_identical(tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    _password(tmp_path)
    secrets = {k: tenant.settings.text(k) for k in ("postgres_password", "ami_password", "dialer_password")}
    before = ops.fingerprint(render_tenant(tenant))
    comments = [line for line in tenant.inventory_path.read_text().splitlines() if line.lstrip().startswith("#")]
    lines: list[str] = []
    assert ops.init(tenant, _reporter(lines)) == 0
    text = tenant.inventory_path.read_text()
    vault = tenant.folder / "vault.yml"
    assert not any(v in text for v in secrets.values()) and "postgres_password" not in text
    assert [ln for ln in text.splitlines() if ln.lstrip().startswith("#")] == comments  # layout kept
    assert is_encrypted(vault.read_bytes()) and stat.S_IMODE(vault.stat().st_mode) == 0o600
    assert not any(v.encode() in vault.read_bytes() for v in secrets.values())
    after = load_tenant(tenant.folder, "t1")
    assert {k: after.settings.text(k) for k in secrets} == secrets
    assert ops.fingerprint(render_tenant(after)) == before
    assert not (tenant.folder / "inventory.yml.bak").exists()
    said = "\n".join(lines) + ledger.ledger_path(tenant.folder).read_text()
    assert "byte-identical" in said and not any(v in said for v in secrets.values())
    again: list[str] = []
    assert ops.init(after, _reporter(again)) == 0 and "nothing to do" in again[0]


def test_init_without_a_password_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = _tenant(tmp_path)
    original = tenant.inventory_path.read_bytes()
    code = main(["--instances", str(tenant.folder.parent), "secrets", "init", "--tenant", "t1"])
    assert code == 2 and "no vault password given" in capsys.readouterr().err
    assert tenant.inventory_path.read_bytes() == original and not (tenant.folder / "vault.yml").exists()


def test_init_puts_both_files_back_when_the_render_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = _tenant(tmp_path)
    _password(tmp_path)
    original = tenant.inventory_path.read_bytes()
    renders = iter([{"h:/etc/x": "a"}, {"h:/etc/x": "b"}])
    monkeypatch.setattr(ops, "_render", lambda t: next(renders))
    with pytest.raises(ops.SecretsError) as exc:
        ops.init(tenant, _reporter([]))
    assert exc.value.code == 1 and "h:/etc/x" in str(exc.value) and "put back" in str(exc.value)
    assert tenant.inventory_path.read_bytes() == original and not (tenant.folder / "vault.yml").exists()


def test_rotation_plans_where_the_secret_lives_and_what_restarts(tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    pg = ops.plan(tenant, "postgres")
    assert pg.home == "inventory.yml" and pg.service_hosts == ("omnileads_aio",)
    assert {"postgresql", "omnileads"} <= set(pg.units["omnileads_aio"])
    ami = ops.plan(tenant, "ami")
    assert "asterisk" in ami.units["omnileads_aio"] and "postgresql" not in ami.units["omnileads_aio"]
    _password(tmp_path)
    ops.init(tenant, _reporter([]))
    assert ops.plan(load_tenant(tenant.folder, "t1"), "postgres").home == "vault.yml"


@pytest.mark.parametrize(("layout", "what", "words"), [
    ("aio", "redis", "uses redis_password"),  # generated for every tenant (M8), used only by HA Redis
    ("aio", "keepalived", "no unit of tenant t1 uses keepalived_auth_pass"),
    ("cloud", "postgres", "managed outside omldeploy"),
    ("aio", "bucket", "not available in this version"),
])
def test_rotation_that_does_not_apply_exits_3(tmp_path: Path, layout: str, what: str, words: str) -> None:
    tenant = _tenant(tmp_path, layout)
    with pytest.raises(ops.SecretsError) as exc:
        ops.plan(tenant, what)
    assert exc.value.code == 3 and words in str(exc.value)


def test_keepalived_rotation_restarts_keepalived_on_both_nodes(tmp_path: Path) -> None:
    p = ops.plan(_tenant(tmp_path, "ha"), "keepalived")
    assert p.home == ".omldeploy/secrets.yml"
    with_keepalived = [h for h, units in p.units.items() if "keepalived" in units]
    assert len(with_keepalived) >= 2 and all(units == ["keepalived"] for units in p.units.values())


def test_an_interrupted_rotation_is_finished_with_the_saved_value(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = _tenant(tmp_path)
    old = tenant.settings.text("postgres_password")
    told: list[str] = []

    def host_down(t: Tenant, p: ops.Plan, new: str, r: Reporter) -> None:
        raise ops.VerifyFailed("omnileads_aio: pg_password failed: unreachable")

    monkeypatch.setattr(ops, "_change_service", host_down)
    lines: list[str] = []
    assert ops.rotate(tenant, "postgres", _reporter(lines)) == 1
    pending = ops._pending(tenant.folder)
    assert pending is not None and pending["old"] == old and pending["new"] != old
    assert load_tenant(tenant.folder, "t1").settings.text("postgres_password") == old  # not written yet
    assert stat.S_IMODE((tenant.folder / ops.PENDING).stat().st_mode) == 0o600
    with pytest.raises(ops.SecretsError, match="a rotation of postgres is unfinished"):
        ops.rotate(tenant, "ami", _reporter([]))

    def applied(t: Tenant, action: str, r: Reporter, **kw: Any) -> int:
        told.append(t.settings.text("postgres_password"))
        return 0

    monkeypatch.setattr(ops, "_change_service", lambda t, p, new, r: told.append(new))
    monkeypatch.setattr("omldeploy.ops.converge.converge", applied)
    monkeypatch.setattr(ops, "_verify", lambda t, p, new, old, r: None)
    assert ops.rotate(tenant, "postgres", _reporter(lines)) == 0
    assert told == [pending["new"], pending["new"]]  # the saved value, set on the service, then applied
    assert load_tenant(tenant.folder, "t1").settings.text("postgres_password") == pending["new"]
    assert not (tenant.folder / ops.PENDING).exists()
    records = ledger.read(tenant.folder)
    assert [r.outcome for r in records if r.action == "secrets rotate"] == ["failed", "ok"]
    said = "\n".join(lines) + ledger.ledger_path(tenant.folder).read_text()
    assert old not in said and pending["new"] not in said and "finishing the unfinished rotation" in said


def test_the_cli_offers_every_rotation() -> None:
    from omldeploy.cli.secrets import WHAT

    assert set(WHAT) == set(ops.ROTATIONS)


def test_a_damaged_rotation_state_is_named_without_its_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = _tenant(tmp_path)
    state = tenant.folder / ops.PENDING
    state.parent.mkdir(exist_ok=True)
    state.write_text("what: postgres\nnew: s3cret-half-writ")  # no old value: truncated
    code = main(["--instances", str(tenant.folder.parent), "secrets", "rotate", "--tenant", "t1", "--what", "postgres"])
    err = capsys.readouterr().err
    assert code == 2 and "rotation.yml" in err and "damaged" in err and "s3cret-half-writ" not in err
