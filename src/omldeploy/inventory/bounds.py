"""Numbers and addresses that must fall in a range their consumer accepts.

A port of 70000, a VRRP id above 255 or a retention of zero backups is a valid integer to YAML and to
the schema, but keepalived refuses the config (or, worse, the backup timer deletes every backup): these
rules give the error at `validate` instead, naming the key and the range.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from omldeploy.inventory.model import Shape, Tenant
from omldeploy.inventory.problems import Problems

#: keepalived instances use the base id plus these offsets (components/keepalived: HAPROXY+1 ... PG_RO+4)
VRID_OFFSETS = 4
VRID_MAX = 255
#: HA virtual IPs: the seed's names, and upstream HEAD's names of the same settings
VIP_KEYS = {"postgres_host": "postgres_rw_vip", "postgres_ro_host": "postgres_ro_vip", "voice_host": "omnileads_vip",
            "application_host": "omnileads_vip"}
DEFAULT_PREFIX = 24  # what components/keepalived uses when a host has no netprefix


def check(t: Tenant, p: Problems, line: Callable[[str], int | None]) -> None:
    """Every range rule; see the module docstring."""
    s = t.settings
    for key in ("email_port", "redis_port"):
        if s.has(key) and not 0 < s.num(key) < 65536:
            p.add(key, "is not a TCP port", line=line(key), found=s.num(key), allowed="1-65535")
    for key in ("backup_keep", "backup_keep_days"):
        if s.has(key) and s.num(key) < 1:
            p.add(key, "must be at least 1 (0 would delete every backup right after it is made)", line=line(key),
                  found=s.num(key), allowed="an integer >= 1, or remove the key to keep every backup")
    if s.has("ha_vrid_base") and not 1 <= s.num("ha_vrid_base") <= VRID_MAX - VRID_OFFSETS:
        p.add("ha_vrid_base", f"is not a usable VRRP id: the tenant uses it and the next {VRID_OFFSETS}, and VRRP "
              f"ids are 1-{VRID_MAX}", line=line("ha_vrid_base"), found=s.num("ha_vrid_base"),
              allowed=f"1-{VRID_MAX - VRID_OFFSETS}")
    if t.layout.shape is Shape.HA:
        _vips(t, p, line)
    url = s.opt("bucket_url")
    if url and url.startswith("https://") and s.opt("callrec_device") == "s3-no-check-cert":
        p.warn("callrec_device", "s3-no-check-cert: recordings and database dumps go to the https bucket "
               "without checking its certificate, so anyone on the path can read them; use s3 with a "
               "certificate the hosts trust", line=line("callrec_device"))


def _vips(t: Tenant, p: Problems, line: Callable[[str], int | None]) -> None:
    """keepalived's VIPs are IPv4 addresses in the subnet of the nodes that carry them."""
    s = t.settings
    networks = []
    for h in t.hosts:
        if not h.lan_ip or not h.roles:
            continue
        prefix = h.vars.get("netprefix", DEFAULT_PREFIX)
        try:
            networks.append(ipaddress.IPv4Network(f"{h.lan_ip}/{prefix}", strict=False))
        except ValueError:
            continue  # a bad omni_ip_lan/netprefix is reported by its own rule
    for seed, head in VIP_KEYS.items():
        value = s.opt(seed)
        if not value:
            continue
        key = head if s.has(head) and not s.has(seed) else seed
        try:
            vip = ipaddress.ip_address(value)
        except ValueError:
            p.add(key, "is a virtual IP, so it must be an IPv4 address (keepalived moves an address, not a name)",
                  line=line(key), found=value, allowed="an unused IPv4 address in the hosts' subnet")
            continue
        if vip.version != 4:
            p.add(key, "is an IPv6 address: virtual IPs are IPv4 only in this version", line=line(key),
                  found=value, allowed="an unused IPv4 address in the hosts' subnet")
            continue
        if networks and not any(vip in net for net in networks):
            nets = ", ".join(sorted({str(n) for n in networks}))
            p.add(key, f"is outside the hosts' subnet ({nets}): no neighbour would reach the virtual IP",
                  line=line(key), found=value, allowed=f"an unused address in {nets} (or set netprefix per host)")
