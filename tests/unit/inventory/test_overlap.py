"""Two tenants on one machine are refused by the controller (issue 12, H2, inventory/overlap.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.inventory import overlap
from omldeploy.inventory.problems import InventoryError
from tests.unit.conftest import MakeTenant


def run(inst: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--instances", str(inst), *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_same_address_in_two_tenants_is_refused_naming_both(make_tenant: MakeTenant, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    make_tenant("aio", name="first")
    make_tenant("aio", name="second")  # the example's addresses, unchanged
    inst = tmp_path / "instances"
    for action in ("install", "update", "app", "restart", "upgrade"):
        code, out = run(inst, capsys, action, "--tenant", "second")
        assert code == 2, (action, out)
        assert "tenant 'second' and tenant 'first'" in out and "ansible_host 10.10.10.2" in out, out
        assert "nothing was changed" in out and "overlapping_addresses_ok: true" in out
        assert "Traceback" not in out
    # read-only verbs still work: the second tenant can be validated (and planned) before it is edited
    assert run(inst, capsys, "validate", "--tenant", "second")[0] == 0
    assert run(inst, capsys, "plan", "--tenant", "second")[0] == 0


def test_both_tenants_must_allow_an_intended_overlap(make_tenant: MakeTenant, tmp_path: Path) -> None:
    inst = tmp_path / "instances"
    first = make_tenant("aio", name="first")
    second = make_tenant("aio", name="second", vars={"overlapping_addresses_ok": True})
    with pytest.raises(InventoryError) as err:
        overlap.check(second, inst)
    text = "\n".join(p.format() for p in err.value.problems)
    assert "omni_ip_lan 10.10.10.2" in text and "of 'first' (both tenants must say so)" in text
    with pytest.raises(InventoryError):
        overlap.check(first, inst)  # the first tenant is refused as well: it did not say so
    first = make_tenant("aio", name="first", vars={"overlapping_addresses_ok": True})
    overlap.check(second, inst)
    overlap.check(first, inst)


def test_other_ssh_ports_or_addresses_do_not_overlap(make_tenant: MakeTenant, tmp_path: Path) -> None:
    inst = tmp_path / "instances"
    make_tenant("aio", name="first", hosts={"omnileads_aio": {"ansible_host": "203.0.113.7", "ansible_port": 2201,
                                                               "omni_ip_lan": "10.0.0.1"}})
    second = make_tenant("aio", name="second", hosts={"omnileads_aio": {"ansible_host": "203.0.113.7",
                                                                        "ansible_port": 2202,
                                                                        "omni_ip_lan": "10.0.0.2"}})
    overlap.check(second, inst)  # one jump address, two machines behind it
    third = make_tenant("aio", name="third", hosts={"omnileads_aio": {"ansible_host": "203.0.113.7",
                                                                      "ansible_port": 2202,
                                                                      "omni_ip_lan": "10.0.0.3"}})
    with pytest.raises(InventoryError, match="1 problem"):
        overlap.check(third, inst)  # same address AND port as `second`


def test_an_invalid_other_tenant_does_not_block(make_tenant: MakeTenant, tmp_path: Path) -> None:
    inst = tmp_path / "instances"
    bad = inst / "broken"
    bad.mkdir(parents=True)
    (bad / "inventory.yml").write_text("all: [not, an, inventory\n")
    overlap.check(make_tenant("aio", name="good"), inst)


def test_a_second_tenant_new_says_which_addresses_to_change(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    inst = tmp_path / "instances"
    code, out = run(inst, capsys, "tenant", "new", "a", "--layout", "aio")
    assert code == 0 and "also used by" not in out
    code, out = run(inst, capsys, "tenant", "new", "b", "--layout", "aio")
    assert code == 0
    assert "ansible_host 10.10.10.2 is also used by tenant 'a'" in out
    assert str(inst / "b" / "inventory.yml") in out and "install refuses two tenants on one machine" in out


def test_the_fleet_wide_index_finds_what_pairwise_comparison_finds(make_tenant: MakeTenant) -> None:
    """`fleet upgrade` checks every tenant at once through an index: the same overlaps, in linear time."""
    a = make_tenant("aio", name="a", hosts={"omnileads_aio": {"ansible_host": "10.1.0.1", "omni_ip_lan": "10.1.0.1"}})
    b = make_tenant("aio", name="b", hosts={"omnileads_aio": {"ansible_host": "10.1.0.1", "omni_ip_lan": "10.1.0.2"}})
    c = make_tenant("aio", name="c", vars={"overlapping_addresses_ok": True},
                    hosts={"omnileads_aio": {"ansible_host": "10.1.0.3", "omni_ip_lan": "10.1.0.2"}})
    d = make_tenant("ait", name="d")
    fleet = [a, b, c, d]
    found = overlap.overlaps_among(fleet)
    for t in fleet:
        pairwise = overlap.find_overlaps(t, [o for o in fleet if o.name != t.name])
        assert sorted(map(repr, found[t.name])) == sorted(map(repr, pairwise)), t.name
    assert [o.other for o in found["a"]] == ["b"] and {o.other for o in found["b"]} == {"a", "c"}
    assert found["d"] == [] and [o.other_ok for o in found["b"] if o.other == "c"] == [True]
