"""The host firewall of one tenant host, rendered from the components' own port declarations.

Why from the declarations: the ports a host must open are exactly the ports its components listen on
(components/*: `ports()`, each with a `reach`), so a component that moves or adds a port moves its
rule with it, and docs/firewall.md is generated from the same table (`port_rows`).

The ruleset is an nftables script that replaces omldeploy's own table `inet omldeploy` in one atomic
transaction (`table` + `delete table` + the new table: valid whether the table exists or not). Only
that table is touched: other tables (the distribution's, firewalld's, Podman's) stay as they are, and
a packet must pass all of them. Only the input hook is filtered (policy drop); output and forwarding
are left alone. Always accepted: established/related traffic, loopback, ICMP/ICMPv6, and the SSH port
from the controller (the module fills the `controller` set from its own SSH connection), the
`admin_sources` and the tenant's hosts (repmgr clones over SSH in HA).

Nothing from the inventory reaches the script as text except numbers and addresses that went
through `ipaddress` here (names, tenant names and purposes never do): the script is a program, and a
newline in a value would add rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from omldeploy.components.base import REACHES, Component, Port
from omldeploy.components.context import Ctx
from omldeploy.inventory.model import Tenant

TABLE = "omldeploy"
#: reach -> the nft set its sources must be in ("" = any source; reach `local` gets no rule)
SOURCE_SET = {"public": "", "sip": "sip_sources", "lan": "tenant_hosts", "monitoring": "monitoring_sources",
              "admin": "admin_sources"}
#: the inventory allow-list behind each set (the tenant's hosts are added to every set)
SOURCE_KEYS = {"sip_sources": "sip_allowed_sources", "monitoring_sources": "monitoring_sources",
               "admin_sources": "admin_sources"}
#: tenant-wide addresses that are the tenant's own (VIPs move between its hosts and may be a source)
_OWN_ADDRESS_KEYS = ("omnileads_vip", "postgres_rw_vip", "postgres_ro_vip", "redis_ip_main", "aio_1", "aio_2",
                     "postgres_host", "postgres_ro_host", "voice_host", "application_host", "redis_host")


def enabled(tenant: Tenant) -> bool:
    """`firewall: nftables` (the default `none` renders nothing and leaves the hosts as they are)."""
    return tenant.settings.text("firewall") == "nftables"


def _ipv4(value: object) -> str | None:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        return None


def tenant_addresses(tenant: Tenant) -> list[str]:
    """Every IPv4 address that is one of the tenant's hosts (LAN, SSH address) or a VIP they carry."""
    found: list[str] = []
    for h in tenant.hosts:
        found += [a for a in (_ipv4(h.lan_ip), _ipv4(h.address)) if a]
    for key in _OWN_ADDRESS_KEYS:
        if tenant.settings.has(key):
            ip = _ipv4(tenant.settings[key])
            if ip:
                found.append(ip)
    return sorted(set(found), key=lambda a: ipaddress.IPv4Address(a))


def sources(tenant: Tenant, key: str) -> list[str]:
    """An allow-list from the inventory, re-parsed (the loader validated it; a hostile value raises)."""
    if not tenant.settings.has(key):
        return []
    return [str(ipaddress.IPv4Network(str(v), strict=True)) for v in tenant.settings[key]]


def _set(name: str, elements: Iterable[str]) -> str:
    # nft refuses overlapping intervals in one set (a host inside an allowed network): merge them
    nets = ipaddress.collapse_addresses(ipaddress.IPv4Network(e) for e in elements)
    items = [str(n.network_address) if n.prefixlen == 32 else str(n) for n in nets]
    body = f"type ipv4_addr; flags interval; elements = {{ {', '.join(items)} }}" if items \
        else "type ipv4_addr; flags interval;"
    return f"\tset {name} {{ {body} }}"


@dataclass(frozen=True)
class Rule:
    component: str
    port: Port


def host_rules(ctx: Ctx, comps: list[Component]) -> list[Rule]:
    """The ports of the components placed on ctx.host, in a stable order."""
    rules = [Rule(c.name, p) for c in comps for p in c.ports(ctx)]
    return sorted(rules, key=lambda r: (REACHES.index(r.port.reach), r.port.proto, r.port.number, r.component))


def ruleset(ctx: Ctx, comps: list[Component]) -> str:
    """The nftables script for ctx.host (see the module docstring)."""
    t = ctx.tenant
    own = tenant_addresses(t)
    ssh_port = int(ctx.host.port)
    if not 0 < ssh_port < 65536:
        raise ValueError(f"SSH port {ssh_port} out of range")
    lines = [
        "#!/usr/sbin/nft -f",
        "# omldeploy host firewall: rendered from the components' port declarations (docs/firewall.md).",
        f"# Replaces only the table inet {TABLE}, atomically; other tables are left as they are.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        _set("tenant_hosts", own),
    ]
    for set_name, key in SOURCE_KEYS.items():
        lines.append(_set(set_name, [*own, *sources(t, key)]))
    lines += [
        "\t# filled by the host module with the address the controller's SSH connection comes from",
        "\tset controller { type ipv4_addr; }",
        "\tset controller6 { type ipv6_addr; }",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        '\t\tiif "lo" accept',
        # protocol numbers, not names: nft resolves names through /etc/protocols, which a minimal
        # host (no netbase) does not have. 1 icmp, 58 ipv6-icmp, 112 vrrp
        "\t\tmeta l4proto { 1, 58 } accept",
        f"\t\ttcp dport {ssh_port} ip saddr @controller accept",
        f"\t\ttcp dport {ssh_port} ip6 saddr @controller6 accept",
        f"\t\ttcp dport {ssh_port} ip saddr @admin_sources accept",
    ]
    if any(c.name == "keepalived" for c in comps):
        lines.append("\t\tip saddr @tenant_hosts meta l4proto 112 accept")
    for rule in host_rules(ctx, comps):
        p = rule.port
        if p.reach == "local":
            continue
        if not (0 < p.number < 65536 and (p.last == 0 or p.number < p.last < 65536)):
            raise ValueError(f"{rule.component}: port {p.spec} out of range")
        src = SOURCE_SET[p.reach]
        match = f"ip saddr @{src} " if src else ""
        lines.append(f"\t\t{match}{p.proto} dport {p.spec} accept")
    lines += ["\t}", "}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- documentation


@dataclass(frozen=True)
class Row:
    component: str
    port: str  # 443/tcp, 20000-50000/udp
    reach: str
    purpose: str
    layouts: tuple[str, ...]


def port_rows(placed: Iterable[tuple[str, Ctx, list[Component]]]) -> list[Row]:
    """One row per (component, port, reach, purpose) over (layout name, ctx, components) triples, with
    the layouts it appears in: the table docs/firewall.md shows."""
    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for layout, ctx, comps in placed:
        for rule in host_rules(ctx, comps):
            key = (rule.component, f"{rule.port.spec}/{rule.port.proto}", rule.port.reach, rule.port.purpose)
            names = seen.setdefault(key, [])
            if layout not in names:
                names.append(layout)
    rows = [Row(c, p, r, u, tuple(ls)) for (c, p, r, u), ls in seen.items()]
    return sorted(rows, key=lambda r: (REACHES.index(r.reach), r.component, r.port))


def markdown_table(rows: list[Row]) -> str:
    out = ["| component | port | reachable from | purpose | layouts |", "|---|---|---|---|---|"]
    who = {"public": "anyone", "sip": "tenant hosts + `sip_allowed_sources`", "lan": "tenant hosts",
           "monitoring": "tenant hosts + `monitoring_sources`", "admin": "tenant hosts + `admin_sources`",
           "local": "this host only"}
    for r in rows:
        out.append(f"| {r.component} | {r.port} | {who[r.reach]} | {r.purpose} | {', '.join(r.layouts)} |")
    return "\n".join(out) + "\n"
