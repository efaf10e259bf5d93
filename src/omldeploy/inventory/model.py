"""The typed tenant: what every later stage (placement, render, apply) reads instead of raw YAML."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omldeploy.inventory.schema import KEYS


class Shape(str, Enum):
    AIO = "aio"
    AIT = "ait"
    HA = "ha"


ROLES = ("aio", "data", "voice", "app", "haproxy")


@dataclass(frozen=True)
class Layout:
    shape: Shape
    external_db: bool = False
    external_bucket: bool = False
    #: HA on two all-in-one nodes (upstream HEAD's `omnileads_ha` with two AIO hosts): each node runs
    #: every role; one VIP serves web and voice, PostgreSQL is a repmgr pair, Redis stays per node.
    two_node: bool = False

    @property
    def name(self) -> str:
        if self.two_node:
            return "ha-aio"
        if self.shape is not Shape.HA and self.external_db and self.external_bucket:
            return f"cloud-{self.shape.value}"
        return self.shape.value

    def describe(self) -> str:
        base = {
            Shape.AIO: "all-in-one (1 host)",
            Shape.AIT: "all-in-three (data, voice, app)",
            Shape.HA: "high availability (pairs of data, voice, app, haproxy)",
        }[self.shape]
        if self.two_node:
            base = "high availability on two all-in-one nodes (main and backup)"
        extras = []
        if self.external_db:
            extras.append("managed PostgreSQL")
        if self.external_bucket:
            extras.append("external bucket")
        if self.shape is not Shape.HA and self.external_db and self.external_bucket:
            return f"cloud: {base} with " + " + ".join(extras)
        return base + (" with " + " + ".join(extras) if extras else "")


class Settings(Mapping[str, Any]):
    """Tenant-wide settings: typed values with schema defaults for keys the operator left out."""

    def __init__(self, values: Mapping[str, Any], explicit: frozenset[str]) -> None:
        self._values = dict(values)
        self.explicit = explicit

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        spec = KEYS.get(key)
        if spec is None:
            raise KeyError(key)
        return spec.default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def has(self, key: str) -> bool:
        """True when the operator wrote the key (the seed's `is defined`)."""
        return key in self._values

    def text(self, key: str) -> str:
        value = self[key]
        return "" if value is None else str(value)

    def opt(self, key: str) -> str | None:
        value = self[key]
        return None if value is None else str(value)

    def num(self, key: str) -> int:
        return int(self[key])

    def flag(self, key: str) -> bool:
        return bool(self[key])


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # ansible_host: where SSH goes
    port: int
    lan_ip: str  # omni_ip_lan: binds and inter-host traffic
    roles: frozenset[str]
    ha_role: str | None
    groups: tuple[str, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)  # host-scope keys (typed)
    connection: Mapping[str, Any] = field(default_factory=dict)  # ansible_* variables as written


@dataclass(frozen=True)
class Tenant:
    name: str
    folder: Path
    inventory_path: Path
    layout: Layout
    hosts: tuple[Host, ...]
    settings: Settings
    versions: Mapping[str, str]  # tag key -> tag, after release catalog + explicit keys
    warnings: tuple[str, ...] = ()

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]
