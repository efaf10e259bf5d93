"""Upstream HEAD's two-node HA inventory (`ha_instances` group vars, `omnileads_aio`, `ha_role`,
`omnileads_vip`, `postgres_rw_vip`, `postgres_ro_vip`, `aio_1`/`aio_2`): read as written, placed as
two full nodes, and every mistake reported with its key (exit 2 at the CLI, never a traceback)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from omldeploy.components.keepalived import COMPONENT as KEEPALIVED
from omldeploy.components.repmgr import COMPONENT as REPMGR
from omldeploy.inventory import Tenant, load_tenant
from omldeploy.inventory.problems import InventoryError
from omldeploy.placement import place
from tests.unit.conftest import example

A, B = "tenant_example_7_aio_A", "tenant_example_7_aio_B"
Edit = Callable[[dict[str, Any]], None]


def group(data: dict[str, Any]) -> dict[str, Any]:
    return data["all"]["children"]["ha_instances"]["children"]["tenant_example_7"]  # type: ignore[no-any-return]


def load(tmp_path: Path, *edits: Edit) -> Tenant:
    data = copy.deepcopy(example("ha_aio"))
    for e in edits:
        e(data)
    folder = tmp_path / "instances" / "two"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_tenant(folder, "two")


def problems(tmp_path: Path, *edits: Edit) -> dict[str, str]:
    with pytest.raises(InventoryError) as exc:
        load(tmp_path, *edits)
    return {p.key: p.message for p in exc.value.problems if p.severity == "error"}


def gvar(key: str, value: Any) -> Edit:
    return lambda d: group(d)["vars"].__setitem__(key, value)


def hvar(host: str, key: str, value: Any) -> Edit:
    return lambda d: group(d)["hosts"][host].__setitem__(key, value)


def test_heads_shape_loads_as_two_full_nodes(tmp_path: Path) -> None:
    t = load(tmp_path)
    assert t.layout.name == "ha-aio" and t.layout.two_node
    assert {h.name: h.ha_role for h in t.hosts} == {A: "main", B: "backup"}
    assert all(h.roles == {"data", "voice", "app"} for h in t.hosts)
    s = t.settings  # HEAD's names land on the seed's settings the rest of omldeploy reads
    assert (s.text("voice_host"), s.text("application_host")) == ("172.16.101.200", "172.16.101.200")
    assert (s.text("postgres_host"), s.text("postgres_ro_host")) == ("172.16.101.201", "172.16.101.202")
    p = place(t, {"keepalived_auth_pass": "x" * 8, "repmgr_password": "y" * 16})
    for h in t.hosts:
        names = p.components(h.name)
        assert "sentinel" not in names and "haproxy" not in names
        # the RW VIP exists before this node's own app tier needs it
        assert names.index("repmgr") < names.index("keepalived") < names.index("redis") < names.index("omnileads")
    assert p.facts.redis_host == "localhost"
    main = p.ctx(t.host(A))
    assert [i.name for i in KEEPALIVED.instances(main)] == ["VOICE", "PG_RW", "PG_RO"]
    assert [i.vip for i in KEEPALIVED.instances(main)] == ["172.16.101.200", "172.16.101.201", "172.16.101.202"]
    assert REPMGR.guard_config(main)["witnesses"] == [("172.16.101.1", 22)]


def test_seed_names_work_too_and_contradictions_are_refused(tmp_path: Path) -> None:
    # HEAD's per-host tenant_id label is accepted as written
    t = load(tmp_path, hvar(A, "ha_rol", "main"), hvar(B, "ha_rol", "backup"),
             hvar(A, "tenant_id", "tenant_example_7_A"))
    assert {h.ha_role for h in t.hosts} == {"main", "backup"}
    errs = problems(tmp_path, hvar(A, "ha_rol", "backup"))
    assert "contradicts ha_rol" in errs[f"{A}.ha_role"]
    errs = problems(tmp_path, gvar("postgres_host", "172.16.101.250"))
    assert "contradicts postgres_host" in errs["postgres_rw_vip"]


@pytest.mark.parametrize(("edit", "key", "fragment"), [
    (hvar(B, "ha_role", "main"), "ha_role", "one node with ha_role main and one with ha_role backup"),
    (gvar("aio_1", "172.16.101.110"), "aio_1", "is not the main node's omni_ip_lan"),
    (gvar("omnileads_vip", "172.16.101.109"), "omnileads_vip", "equals host tenant_example_7_aio_A's address"),
    (gvar("postgres_ro_vip", "172.16.101.201"), "postgres_ro_host", "must differ"),
    (gvar("ha_witness", "10.0.0.1,bad host;rm"), "ha_witness", "is not a host or host:port"),
    (gvar("ha_witness", "10.0.0.1:99999"), "ha_witness", "out of 1-65535"),
    (lambda d: group(d)["vars"].pop("omnileads_vip"), "omnileads_vip", "missing"),
    (lambda d: group(d)["hosts"][A].pop("ha_role"), f"{A}.ha_role", "missing"),
    (lambda d: group(d)["vars"].pop("ha_vip_nic"), f"{A}.ha_vip_nic", "missing"),
    (lambda d: d["omnileads_aio"]["hosts"].__setitem__("third", None) or d["all"]["children"]["ha_instances"]
     ["children"]["tenant_example_7"]["hosts"].__setitem__("third", {"ansible_host": "172.16.101.111",
                                                                     "omni_ip_lan": "172.16.101.111",
                                                                     "ha_role": "backup"}),
     "omnileads_aio", "exactly two all-in-one hosts"),
    (lambda d: group(d)["vars"].__setitem__("omnileads_vip", "not-an-ip"), "omnileads_vip", "IPv4"),
])
def test_mistakes_name_their_key(tmp_path: Path, edit: Edit, key: str, fragment: str) -> None:
    errs = problems(tmp_path, edit)
    assert key in errs, errs
    assert fragment in errs[key], errs[key]


def test_a_tenant_setting_in_a_group_of_only_some_hosts_is_still_refused(tmp_path: Path) -> None:
    """Only a group holding every host is tenant-wide (HEAD's tenant group): elsewhere the old rule stands."""
    def split(d: dict[str, Any]) -> None:
        g = group(d)
        g["children"] = {"only_a": {"hosts": {A: None}, "vars": {"TZ": "UTC"}}}
    errs = problems(tmp_path, split)
    assert "tenant-wide setting" in errs[f"{A}.TZ"]


def test_without_a_witness_the_guard_serves_alone_and_validation_warns(tmp_path: Path) -> None:
    t = load(tmp_path, lambda d: group(d)["vars"].pop("ha_witness"))
    assert any("without ha_witness" in w for w in t.warnings)
    p = place(t, {"keepalived_auth_pass": "x" * 8, "repmgr_password": "y" * 16})
    assert REPMGR.guard_config(p.ctx(t.host(A)))["witnesses"] == []
    json.dumps(REPMGR.guard_config(p.ctx(t.host(A))))  # the guard reads it as JSON
