"""Version bookkeeping of upgrade/rollback: the ledger history and keeping the inventory in step."""

from __future__ import annotations

from omldeploy.inventory import load_tenant
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
                                                   duration=1.0, versions=versions))
    hist = history(tenant.folder)
    assert [(n, r.action, r.versions["nginx_version"]) for n, r in hist] == [
        (1, "upgrade", "230204.01"), (2, "install", a["nginx_version"])]
