"""Addresses and interface names of one named sandbox, derived from its name.

Each sandbox owns the private /24 10.99.<k>.0 on its own bridge; <k> comes from a hash of the name
and moves on to the next free value if another sandbox (or anything else on the machine) already
uses it. The layout inside the subnet is fixed so tests and docs can rely on it:

    .1        controller side (bridge address); the OCI registry listens on .1:5000
    .5        the S3 store (own network namespace)
    .10+i     host h<i>
    .254      default route of the hosts: an address nobody owns, so route-based facts work
              while no packet can leave the bridge
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

FIRST_INDEX = 20
INDEX_SPAN = 200
REGISTRY_PORT = 5000
S3_PORT = 8333
MAX_HOSTS = 200


@dataclass(frozen=True)
class NetPlan:
    """Names and addresses of one sandbox's network."""

    name: str
    index: int

    @property
    def prefix(self) -> str:
        return f"10.99.{self.index}"

    @property
    def subnet(self) -> str:
        return f"{self.prefix}.0/24"

    @property
    def bridge(self) -> str:
        return f"osb{self.index}"

    @property
    def bridge_ip(self) -> str:
        return f"{self.prefix}.1"

    @property
    def unused_gateway(self) -> str:
        return f"{self.prefix}.254"

    @property
    def registry(self) -> str:
        """host:port of the sandbox's OCI registry, as image references use it."""
        return f"{self.bridge_ip}:{REGISTRY_PORT}"

    @property
    def s3_ip(self) -> str:
        return f"{self.prefix}.5"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.s3_ip}:{S3_PORT}"

    @property
    def s3_netns(self) -> str:
        return f"osb-{self.name}-s3"

    @property
    def s3_veth(self) -> str:
        return f"osb{self.index}s3"

    def host_ip(self, number: int) -> str:
        return f"{self.prefix}.{10 + number}"

    def host_netns(self, host: str) -> str:
        return f"osb-{self.name}-{host}"

    def host_veth(self, number: int) -> str:
        return f"osb{self.index}h{number}"  # at most 10 characters (IFNAMSIZ is 16)


def preferred_index(name: str) -> int:
    """Stable starting point for the subnet index of a name."""
    digest = hashlib.sha256(name.encode()).digest()
    return FIRST_INDEX + int.from_bytes(digest[:4], "big") % INDEX_SPAN


def choose_index(name: str, taken: set[int]) -> int | None:
    """First free index at or after the name's preferred one (wrapping), or None if all are used."""
    start = preferred_index(name) - FIRST_INDEX
    for step in range(INDEX_SPAN):
        k = FIRST_INDEX + (start + step) % INDEX_SPAN
        if k not in taken:
            return k
    return None
