"""The rendered result: per host, every file with its mode, plus the unit plan the apply engine runs.

A bundle is plain data. It can be written to a folder for inspection (`omldeploy render`), summarised
(`omldeploy plan`) or shipped to a host in one piece by the apply engine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BundleFile:
    path: str  # absolute path on the host
    content: bytes
    mode: int
    secret: bool = False
    only_if_missing: bool = False
    kind: str = "config"  # unit, quadlet, env, config, cert, script, hostunit
    component: str = ""  # the component that owns it ("" = shared: certs, oml_manage)
    owner: int | None = None  # uid = gid on the host; None: root

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class UnitPlan:
    """One container component on one host: what to pull, enable and check."""

    name: str
    container: str
    image: str
    enabled: bool
    start_order: int
    after: tuple[str, ...]  # same-host units whose restart restarts this one too (Component.follows_restarts)
    health: dict[str, Any]
    env_file: str | None
    files: tuple[str, ...]  # paths of files whose change requires a restart of this unit
    groups: tuple[str, ...]
    pre_start: tuple[str, ...] = ()
    post_start: tuple[str, ...] = ()
    hook_images: tuple[str, ...] = ()


@dataclass
class HostBundle:
    host: str
    address: str
    port: int
    lan_ip: str
    roles: tuple[str, ...]
    unit_style: str  # auto, classic, quadlet
    files: list[BundleFile] = field(default_factory=list)
    units: list[UnitPlan] = field(default_factory=list)
    host_units: list[str] = field(default_factory=list)
    directories: list[tuple[str, int]] = field(default_factory=list)
    partial: bool = False  # only some components (per-component action): keep the others untouched
    force_restart: list[str] = field(default_factory=list)  # restarted even when nothing changed (restart_*)
    drain: dict[str, Any] | None = None  # how activate takes the host out of its balancer (components.base.Drain)
    #: how the `calls` step counts the host's active calls before a unit that drops them restarts, and how
    #: long it waits for them to end (components.base.CallCounter, voice_drain_timeout); None: no wait
    calls: dict[str, Any] | None = None
    #: the nftables script of the host firewall (render/firewall.py); None with `firewall: none`. Not a
    #: staged file: the firewall module keeps its own copy once the controller confirmed the ruleset
    firewall: str | None = None
    #: named Podman volumes the units mount (not host paths): what `tenant destroy` removes with the data
    volumes: list[str] = field(default_factory=list)

    def add(self, f: BundleFile) -> None:
        for existing in self.files:
            if existing.path == f.path:
                if existing.content != f.content:
                    raise ValueError(f"{self.host}: two different contents for {f.path}")
                return
        self.files.append(f)

    def file(self, path: str) -> BundleFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    @property
    def images(self) -> list[str]:
        return sorted({u.image for u in self.units} | {i for u in self.units for i in u.hook_images})

    def manifest(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "lan_ip": self.lan_ip,
            "roles": list(self.roles),
            "unit_style": self.unit_style,
            "images": self.images,
            "directories": [{"path": p, "mode": f"{m:04o}"} for p, m in self.directories],
            "units": [asdict(u) for u in sorted(self.units, key=lambda u: (u.start_order, u.name))],
            "host_units": self.host_units,
            "files": [
                {"path": f.path, "mode": f"{f.mode:04o}", "kind": f.kind, "secret": f.secret,
                 "only_if_missing": f.only_if_missing, "sha256": f.sha256,
                 **({} if f.owner is None else {"owner": f.owner})}
                for f in sorted(self.files, key=lambda f: f.path)
            ],
        }

    def manifest_with_firewall(self) -> dict[str, Any]:
        """The manifest, plus the firewall script's hash when there is one (`firewall: none` tenants keep
        the manifest they always had)."""
        out = self.manifest()
        if self.firewall is not None:
            out["firewall"] = hashlib.sha256(self.firewall.encode()).hexdigest()
        return out

    def manifest_json(self) -> str:
        return json.dumps(self.manifest_with_firewall(), indent=2, sort_keys=False) + "\n"


@dataclass
class Bundle:
    tenant: str
    layout: str
    hosts: list[HostBundle] = field(default_factory=list)

    def host(self, name: str) -> HostBundle:
        for h in self.hosts:
            if h.host == name:
                return h
        raise KeyError(name)
