"""Creating and deleting the sandbox's own network objects with iproute2.

Only objects whose names the sandbox derived itself are touched (see netplan): the bridge osb<k>,
veths osb<k>h<i>/osb<k>s3 and namespaces osb-<name>-*. The controller's forwarding and firewall
settings are never changed, so nothing on the bridge can reach any other network.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from .procs import run


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def used_subnet_indexes() -> set[int]:
    """Indexes k whose 10.99.k.0/24 overlaps any IPv4 address or route already on the machine."""
    taken: set[int] = set()
    nets: list[ipaddress.IPv4Network] = []
    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addrs:
        for info in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for r in routes:
        dst = str(r.get("dst", ""))
        if not dst or dst == "default":
            continue
        try:
            nets.append(ipaddress.IPv4Network(dst if "/" in dst else dst + "/32", strict=False))
        except ValueError:
            continue
    for k in range(256):
        cand = ipaddress.IPv4Network(f"10.99.{k}.0/24")
        if any(cand.overlaps(n) for n in nets if n.prefixlen > 0):
            taken.add(k)
    return taken


def ensure_bridge(name: str, address: str) -> bool:
    """Create the bridge with its /24 address if missing; returns True if it was created now."""
    if link_exists(name):
        return False
    run(["ip", "link", "add", name, "type", "bridge"])
    run(["ip", "addr", "add", f"{address}/24", "dev", name])
    run(["ip", "link", "set", name, "up"])
    return True


def add_namespace_on_bridge(netns: str, veth: str, bridge: str, address: str, gateway: str | None) -> None:
    """New network namespace joined to the bridge by a veth pair, eth0 inside with `address`/24."""
    if not netns_exists(netns):
        run(["ip", "netns", "add", netns])
    if not link_exists(veth):
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", bridge, "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    have = run(["ip", "-n", netns, "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    if f" {address}/" not in have:
        run(["ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    if gateway is not None:
        run(["ip", "-n", netns, "route", "replace", "default", "via", gateway])


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "del", name], check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name], check=False)
