"""`upgrade`/`rollback` keep the inventory valid and private (issue 12 M7)."""

from __future__ import annotations

import os

import pytest
import yaml

from omldeploy.inventory import load_tenant
from omldeploy.ops.upgrade import UpgradeError, pin_versions
from tests.unit.conftest import EXAMPLES, MakeTenant, fill_placeholders


def _ha_from_example(make_tenant: MakeTenant):  # type: ignore[no-untyped-def]
    """The HA example as written (comments; groups' `vars:` before `all: vars:`), without fastagi."""
    tenant = make_tenant("ha")
    text = fill_placeholders((EXAMPLES / "inventory_ha.yml").read_text())
    text = "".join(line for line in text.splitlines(keepends=True) if "fastagi_version" not in line)
    tenant.inventory_path.write_text(text)
    return load_tenant(tenant.folder, tenant.name)


def test_a_missing_key_goes_to_all_vars_not_to_the_first_group(make_tenant: MakeTenant) -> None:
    tenant = _ha_from_example(make_tenant)
    before = tenant.inventory_path.read_text()
    assert before.index("      vars:") < before.index("\n  vars:"), "a group's vars come first in the example"
    changed = pin_versions(tenant, {**tenant.versions, "fastagi_version": "240101.01"})
    assert changed == ["fastagi_version"]
    data = yaml.safe_load(tenant.inventory_path.read_text())
    assert str(data["all"]["vars"]["fastagi_version"]) == "240101.01"
    reloaded = load_tenant(tenant.folder, tenant.name)  # the inventory stays valid
    assert reloaded.versions["fastagi_version"] == "240101.01"
    after = tenant.inventory_path.read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.lstrip().startswith("#")]
    assert len(after.splitlines()) == len(before.splitlines()) + 1


def test_removing_an_optional_key_and_putting_it_back(make_tenant: MakeTenant) -> None:
    tenant = _ha_from_example(make_tenant)
    versions = {**tenant.versions, "fastagi_version": "240101.01"}
    pin_versions(tenant, versions)
    versions.pop("fastagi_version")
    assert pin_versions(load_tenant(tenant.folder, tenant.name), versions) == ["fastagi_version"]
    assert "fastagi_version" not in load_tenant(tenant.folder, tenant.name).versions


def test_the_backup_holds_passwords_so_it_is_0600(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    os.chmod(tenant.inventory_path, 0o640)
    bak = tenant.inventory_path.with_name("inventory.yml.bak")
    bak.write_text("old\n")
    os.chmod(bak, 0o644)  # an older, world-readable backup must not stay so
    old = tenant.inventory_path.read_text()
    assert pin_versions(tenant, {**tenant.versions, "nginx_version": "230204.99"}) == ["nginx_version"]
    assert bak.stat().st_mode & 0o777 == 0o600 and bak.read_text() == old
    assert tenant.inventory_path.stat().st_mode & 0o777 == 0o640  # the inventory keeps its own mode
    assert not [p.name for p in tenant.folder.iterdir() if p.name.endswith(".tmp")]


def test_a_value_is_written_so_it_cannot_change_the_structure(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    pin_versions(tenant, {**tenant.versions, "nginx_version": "x\n  evil: 1 # y"})
    data = yaml.safe_load(tenant.inventory_path.read_text())
    assert data["all"]["vars"]["nginx_version"] == "x\n  evil: 1 # y" and "evil" not in data["all"]["vars"]


def test_an_inventory_without_all_is_refused_clearly(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    tenant.inventory_path.write_text("ungrouped:\n  hosts: {}\n")
    with pytest.raises(UpgradeError, match="under `all: vars:` by hand"):
        pin_versions(tenant, {"fastagi_version": "1"})
