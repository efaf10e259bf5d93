"""Two tenants must not deploy onto the same machine (issue 12, H2, controller side).

Tenants share nothing on a host by design: unit names, env files (`/etc/default/*.env`) and certificates
(`/etc/omnileads/certs`) are the same for every tenant, so a second tenant pointed at a host that already
runs one silently overwrites it. Before any action that changes hosts, the tenant's addresses are
compared with every other tenant under instances/: the same `ansible_host` on the same SSH port, or the
same `omni_ip_lan`, is refused, naming both tenants and the address.

Different machines can share an address (two sites behind NAT with the same private range, or SSH port
forwarding through one jump address): the operator says so with `overlapping_addresses_ok: true` in
BOTH tenants, since either one alone cannot know what the other intends. The hosts keep an owner marker
as the second line of defence (apply/ansible/library/omldeploy_host.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omldeploy.inventory.load import load_tenant
from omldeploy.inventory.model import Tenant
from omldeploy.inventory.problems import InventoryError, Problem

OK_KEY = "overlapping_addresses_ok"


@dataclass(frozen=True)
class Overlap:
    """One address two tenants both use."""

    host: str  # host of the tenant being applied
    key: str  # "ansible_host" or "omni_ip_lan"
    address: str  # as shown: "10.0.0.5" or "10.0.0.5 port 2222"
    other: str  # the other tenant
    other_host: str
    other_ok: bool  # the other tenant allows overlaps too


def _addresses(tenant: Tenant) -> dict[tuple[str, str], str]:
    """(key, address) -> host name, for every host of the tenant."""
    out: dict[tuple[str, str], str] = {}
    for h in tenant.hosts:
        out.setdefault(("ansible_host", h.address if h.port == 22 else f"{h.address} port {h.port}"), h.name)
        out.setdefault(("omni_ip_lan", h.lan_ip), h.name)
    return out


def other_tenants(instances: Path, exclude: Path) -> list[Tenant]:
    """Every valid tenant under `instances` but `exclude`. An invalid one is skipped: it cannot be applied
    either, and its own `validate` says what is wrong with it."""
    out: list[Tenant] = []
    if not instances.is_dir():
        return out
    for folder in sorted(p for p in instances.iterdir() if (p / "inventory.yml").is_file()):
        if folder.resolve() == exclude.resolve():
            continue
        try:
            out.append(load_tenant(folder, folder.name))
        except (InventoryError, OSError):  # StateError is an InventoryError
            continue
    return out


def find_overlaps(tenant: Tenant, others: list[Tenant]) -> list[Overlap]:
    mine = _addresses(tenant)
    found: list[Overlap] = []
    for other in others:
        theirs = _addresses(other)
        for (key, address), host in mine.items():
            if (key, address) in theirs:
                found.append(Overlap(host, key, address, other.name, theirs[(key, address)],
                                     other.settings.flag(OK_KEY)))
    return found


def overlaps_among(tenants: list[Tenant]) -> dict[str, list[Overlap]]:
    """`find_overlaps` of every tenant against all the others, from one index of addresses: linear in
    the fleet's size, where pairwise comparison is quadratic (1,000 tenants: a million comparisons)."""
    index: dict[tuple[str, str], list[tuple[Tenant, str]]] = {}
    for t in tenants:
        for key_addr, host in _addresses(t).items():
            index.setdefault(key_addr, []).append((t, host))
    out: dict[str, list[Overlap]] = {t.name: [] for t in tenants}
    for (key, address), users in index.items():
        if len(users) < 2:
            continue
        for t, host in users:
            for other, other_host in users:
                if other.name != t.name:
                    out[t.name].append(Overlap(host, key, address, other.name, other_host,
                                               other.settings.flag(OK_KEY)))
    return out


def refused(tenant: Tenant, overlaps: list[Overlap]) -> list[Overlap]:
    """The overlaps that stop an apply: all unless BOTH tenants set overlapping_addresses_ok."""
    if tenant.settings.flag(OK_KEY):
        return [o for o in overlaps if not o.other_ok]
    return overlaps


def problems(tenant: Tenant, overlaps: list[Overlap]) -> list[Problem]:
    out = []
    for o in overlaps:
        missing = [t for t, ok in ((tenant.name, tenant.settings.flag(OK_KEY)), (o.other, o.other_ok)) if not ok]
        out.append(Problem(
            str(tenant.inventory_path), f"{o.host}.{o.key}",
            f"tenant '{tenant.name}' and tenant '{o.other}' (host {o.other_host}) both use {o.key} {o.address}: "
            f"two tenants on one machine overwrite each other's units, env files and certificates",
            found=o.address,
            allowed=f"an address of a machine no other tenant uses; if these really are different machines "
                    f"(NAT, SSH port forwarding), set {OK_KEY}: true under all.vars of "
                    f"{' and '.join(repr(t) for t in missing)} (both tenants must say so)"))
    return out


def check(tenant: Tenant, instances: Path) -> None:
    """Raise InventoryError (exit 2) when `tenant` shares an address with another tenant under `instances`."""
    bad = refused(tenant, find_overlaps(tenant, other_tenants(instances, tenant.folder)))
    if bad:
        raise InventoryError(problems(tenant, bad))
