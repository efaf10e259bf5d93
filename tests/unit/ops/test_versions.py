"""Version bookkeeping of upgrade/rollback: the ledger history and keeping the inventory in step."""

from __future__ import annotations

import pytest

from omldeploy.inventory import Tenant, load_tenant
from omldeploy.ops import upgrade as upgrade_mod
from omldeploy.ops.converge import Reporter
from omldeploy.ops.upgrade import history, pin_versions
from omldeploy.state import ledger
from tests.unit.conftest import MakeTenant


def test_pin_versions_rewrites_only_version_lines(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    text = tenant.inventory_path.read_text()
    changed = pin_versions(tenant, {"nginx_version": "230204.01", "omnileads_version": "1.26.0"})
    assert sorted(changed) == ["nginx_version", "omnileads_version"]
    new = tenant.inventory_path.read_text()
    assert "nginx_version: 230204.01" in new and "omnileads_version: 1.26.0" in new
    assert len(new.splitlines()) == len(text.splitlines())
    assert (tenant.inventory_path.parent / "inventory.yml.bak").read_text() == text
    reloaded = load_tenant(tenant.folder, tenant.name)
    assert reloaded.versions["nginx_version"] == "230204.01"


def test_history_lists_distinct_successful_version_sets(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    a = dict(tenant.versions)
    b = {**a, "nginx_version": "230204.01"}
    for action, outcome, versions in (("install", "ok", a), ("install", "ok", a), ("upgrade", "failed", b),
                                      ("upgrade", "ok", b), ("backup", "ok", b)):
        ledger.append(tenant.folder, ledger.Record(action=action, outcome=outcome, started=ledger.now(),
                                                   duration=1.0, versions=versions), redact=str)
    hist = history(tenant.folder)
    assert [(n, r.action, r.versions["nginx_version"]) for n, r in hist] == [
        (1, "upgrade", "230204.01"), (2, "install", a["nginx_version"])]


def test_plain_rollback_after_a_failed_run_returns_to_the_last_healthy_versions(
        make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failed upgrade whose automatic rollback failed too, the hosts run neither entry 1 nor 2:
    `rollback` must go to entry 1 (the last healthy versions), not one further back."""
    tenant = make_tenant("aio")
    a = dict(tenant.versions)
    b = {**a, "nginx_version": "230204.01"}
    c = {**a, "nginx_version": "230204.01-broken"}
    for action, outcome, versions in (("install", "ok", a), ("upgrade", "ok", b), ("upgrade", "failed", c),
                                      ("rollback", "failed", b)):
        ledger.append(tenant.folder, ledger.Record(action=action, outcome=outcome, started=ledger.now(),
                                                   duration=1.0, versions=versions), redact=str)
    deployed: list[dict[str, str]] = []

    def fake_converge(t: Tenant, action: str, reporter: Reporter, **_: object) -> int:
        deployed.append(dict(t.versions))
        return 0

    monkeypatch.setattr(upgrade_mod, "converge", fake_converge)
    lines: list[str] = []
    code = upgrade_mod.rollback(tenant, Reporter(say=lines.append, warn=lines.append))
    assert code == 0
    assert deployed[-1]["nginx_version"] == "230204.01"
    assert any("last run failed" in line and "entry 1" in line for line in lines)
    assert "nginx_version: 230204.01\n" in tenant.inventory_path.read_text()


def test_a_version_set_without_an_optional_component_removes_it(make_tenant: MakeTenant) -> None:
    """Going back to versions from before fastagi (a rollback, or `--release` to an older release) must
    drop fastagi and ami from the placement and from the inventory, or the next install brings them back."""
    tenant = make_tenant("aio", vars={"fastagi_version": "230920.01", "astami_version": "230920.01"})
    assert {"fastagi_version", "astami_version"} <= tenant.versions.keys()
    older = {k: v for k, v in tenant.versions.items() if k not in ("fastagi_version", "astami_version")}
    merged = upgrade_mod._with_versions(tenant, older)
    assert "fastagi_version" not in merged.versions and "astami_version" not in merged.versions
    changed = pin_versions(tenant, older)
    assert {"fastagi_version", "astami_version"} <= set(changed)
    reloaded = load_tenant(tenant.folder, tenant.name)
    assert "fastagi_version" not in reloaded.versions and "astami_version" not in reloaded.versions
    assert "fastagi_version" in (tenant.folder / "inventory.yml.bak").read_text()
    # and forward again: pinned back in, under vars
    pin_versions(reloaded, dict(tenant.versions))
    assert load_tenant(tenant.folder, tenant.name).versions["fastagi_version"] == "230920.01"


def test_upgrade_refuses_a_release_it_cannot_deploy(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    with pytest.raises(upgrade_mod.UpgradeError, match=r"release 2\.2\.2 cannot be deployed: .*RabbitMQ"):
        upgrade_mod.upgrade(tenant, Reporter(say=lambda _: None, warn=lambda _: None), release="2.2.2")
