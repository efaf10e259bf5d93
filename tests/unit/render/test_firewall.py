"""The host firewall rendered from the components' port declarations (render/firewall.py), the
inventory keys that drive it, and docs/firewall.md generated from the same declarations."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from omldeploy.components.base import Port
from omldeploy.inventory import InventoryError
from omldeploy.placement import place
from omldeploy.render import firewall
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

DOC = Path(__file__).resolve().parents[3] / "docs" / "firewall.md"
BEGIN, END = "<!-- ports:begin (generated) -->", "<!-- ports:end -->"
LAYOUTS = ("aio", "ait", "cloud", "ha", "ha_aio")
ON = {"firewall": "nftables", "sip_allowed_sources": ["203.0.113.7", "198.51.100.0/24"],
      "monitoring_sources": ["192.0.2.0/24"], "admin_sources": ["192.0.2.50"]}


def _rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().endswith(("accept", "drop"))]


def test_firewall_none_is_the_default_and_renders_nothing(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    assert tenant.settings.text("firewall") == "none"
    assert all(hb.firewall is None for hb in render_tenant(tenant).hosts)


def test_aio_ruleset_opens_each_port_to_its_reach_only(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars=ON)
    (hb,) = render_tenant(tenant).hosts
    assert hb.firewall is not None
    rules = _rules(hb.firewall)
    assert "policy drop;" in hb.firewall and "ct state established,related accept" in rules
    assert "tcp dport 443 accept" in rules  # public
    assert "udp dport 20000-50000 accept" in rules  # RTP
    assert "ip saddr @sip_sources udp dport 5060 accept" in rules
    assert "ip saddr @tenant_hosts tcp dport 5432 accept" in rules  # PostgreSQL: tenant hosts only
    assert "ip saddr @tenant_hosts tcp dport 6379 accept" in rules
    assert "ip saddr @monitoring_sources tcp dport 9100 accept" in rules
    assert "ip saddr @admin_sources tcp dport 9001 accept" in rules  # MinIO console
    assert {"tcp dport 22 ip saddr @controller accept", "tcp dport 22 ip saddr @admin_sources accept"} <= set(rules)
    assert not any(re.search(r"dport (5432|6379|9100|5060)\b", r) and "saddr" not in r for r in rules)
    sets = dict(re.findall(r"set (\w+) \{ type ipv4_addr; flags interval; elements = \{ ([^}]*) \}", hb.firewall))
    assert sets["sip_sources"] == "10.10.10.2, 198.51.100.0/24, 203.0.113.7"
    assert sets["admin_sources"] == "10.10.10.2, 192.0.2.50"


def test_every_host_of_every_layout_gets_a_ruleset_with_its_own_ports(make_tenant: MakeTenant) -> None:
    for layout in LAYOUTS:
        tenant = make_tenant(layout, vars=ON, name=f"fw{layout.replace('_', '')}")
        placement = place(tenant)
        for host in tenant.hosts:
            comps = placement.by_host[host.name]
            ctx = placement.ctx(host)
            script = firewall.ruleset(ctx, comps)
            for comp in comps:
                for port in comp.ports(ctx):
                    if port.reach != "local":
                        assert f"{port.proto} dport {port.spec} accept" in script, (layout, host.name, comp.name)
            assert ("meta l4proto 112 accept" in script) == any(c.name == "keepalived" for c in comps)


def test_port_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="reach"):
        Port(1, reach="world")
    with pytest.raises(ValueError, match="proto"):
        Port(1, proto="sctp")


@pytest.mark.parametrize(("value", "fragment"), [
    (["10.0.0.1/24"], "no host bits"),
    (["1.2.3.4; accept"], "is not an IPv4 address"),
    (["1.2.3.4\ntcp dport 22 accept"], "is not an IPv4 address"),
    (["::1"], "is not an IPv4 address"),
    ([{"a": "b"}], "is not an address"),
    ([""], "empty entry"),
    (42, "must be a list"),
    ([f"10.0.{i // 256}.{i % 256}" for i in range(300)], "more than 256"),
])
def test_hostile_sources_are_refused(make_tenant: MakeTenant, value: object, fragment: str) -> None:
    with pytest.raises(InventoryError) as info:
        make_tenant("aio", vars={**ON, "admin_sources": value})
    found = [p for p in info.value.problems if p.key == "admin_sources"]
    assert found and fragment in found[0].message, info.value.problems


def test_firewalld_and_bad_rollback_delays_are_refused(make_tenant: MakeTenant) -> None:
    with pytest.raises(InventoryError) as info:
        make_tenant("aio", vars={"firewall": "firewalld", "firewall_rollback_seconds": 5})
    by_key = {p.key: p.message for p in info.value.problems}
    assert "only nftables is" in by_key["firewall"]
    assert "out of range" in by_key["firewall_rollback_seconds"]
    with pytest.raises(InventoryError):
        make_tenant("aio", vars={"firewall": "iptables"})


def test_comma_separated_sources_are_accepted(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={**ON, "monitoring_sources": "192.0.2.0/24, 198.51.100.9"})
    assert tenant.settings["monitoring_sources"] == ("192.0.2.0/24", "198.51.100.9")


def current_table(make_tenant: MakeTenant) -> str:
    placed = []
    for layout in LAYOUTS:
        tenant = make_tenant(layout, name=f"doc{layout.replace('_', '')}")
        placement = place(tenant)
        name = tenant.layout.name
        placed += [(name, placement.ctx(h), placement.by_host[h.name]) for h in tenant.hosts]
    return firewall.markdown_table(firewall.port_rows(placed))


def test_docs_firewall_table_is_current(make_tenant: MakeTenant) -> None:
    """docs/firewall.md's port table is generated from the declarations; regenerate it with
    `OMLDEPLOY_WRITE_DOCS=1 .venv/bin/python -m pytest tests/unit/render/test_firewall.py -k docs`."""
    text = DOC.read_text()
    table = current_table(make_tenant)
    if os.environ.get("OMLDEPLOY_WRITE_DOCS") == "1":
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
        text = DOC.read_text()
    assert f"{BEGIN}\n{table}{END}" in text, "docs/firewall.md is out of date with the port declarations"


def test_no_two_components_of_a_host_declare_the_same_port(make_tenant: MakeTenant) -> None:
    """Two listeners on one port of one host: the second never starts. Every host of every example
    layout (HAProxy 8404 for its metrics: the app nodes' drain agent has 8405)."""
    for layout in LAYOUTS:
        tenant = make_tenant(layout, name=f"p{layout.replace('_', '')}")
        placement = place(tenant)
        machines = [[h] for h in tenant.hosts]
        for hosts in machines:
            seen: dict[tuple[int, str], str] = {}
            for h in hosts:
                for comp in placement.by_host[h.name]:
                    # single ports only: a range (RTP) is a firewall opening from which the media servers
                    # pick free ports, not one listener
                    for p in comp.ports(placement.ctx(h)):
                        if p.last:
                            continue
                        key = (p.number, p.proto)
                        where = f"{layout}/{'+'.join(x.name for x in hosts)}"
                        assert key not in seen or seen[key] == comp.name, f"{where}: {key} {comp.name}, {seen[key]}"
                        seen[key] = comp.name
