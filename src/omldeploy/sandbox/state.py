"""The record of what one named sandbox created, kept as JSON in its state directory.

`down` works only from this record (plus names derived from it), which is what makes it safe
after a crash: it stops the processes it recorded (if their identity still matches), and removes
the namespaces, links and mounts it names, nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .netplan import NetPlan
from .procs import ProcRecord


@dataclass
class HostState:
    """One test host (an nspawn container booting systemd)."""

    name: str
    number: int
    os: str
    rootfs: str
    ip: str
    supervisor: ProcRecord | None = None
    mounted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "number": self.number, "os": self.os, "rootfs": self.rootfs,
                "ip": self.ip, "mounted": self.mounted,
                "supervisor": None if self.supervisor is None else self.supervisor.to_json()}

    @staticmethod
    def from_json(d: dict[str, Any]) -> HostState:
        sup = d.get("supervisor")
        return HostState(name=str(d["name"]), number=int(d["number"]), os=str(d["os"]),
                         rootfs=str(d["rootfs"]), ip=str(d["ip"]), mounted=bool(d.get("mounted")),
                         supervisor=None if sup is None else ProcRecord.from_json(sup))


@dataclass
class SandboxState:
    """Everything one sandbox owns."""

    name: str
    index: int
    bridge_created: bool = False
    hosts: dict[str, HostState] = field(default_factory=dict)
    registry: ProcRecord | None = None
    s3: ProcRecord | None = None
    s3_access_key: str = ""
    s3_secret_key: str = ""

    @property
    def net(self) -> NetPlan:
        return NetPlan(self.name, self.index)

    @property
    def dir(self) -> Path:
        return paths.state_dir(self.name)

    def save(self) -> None:
        """Write atomically, so a crash never leaves a half-written record."""
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {
            "name": self.name, "index": self.index, "bridge_created": self.bridge_created,
            "hosts": [h.to_json() for h in sorted(self.hosts.values(), key=lambda h: h.number)],
            "registry": None if self.registry is None else self.registry.to_json(),
            "s3": None if self.s3 is None else self.s3.to_json(),
            "s3_access_key": self.s3_access_key, "s3_secret_key": self.s3_secret_key,
        }
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(tmp, 0o600)  # holds the S3 secret
        tmp.replace(self.dir / "state.json")


def load(name: str) -> SandboxState | None:
    """The recorded state of a sandbox, or None if it has none."""
    f = paths.state_dir(name) / "state.json"
    if not f.exists():
        return None
    d = json.loads(f.read_text())
    reg, s3 = d.get("registry"), d.get("s3")
    return SandboxState(
        name=str(d["name"]), index=int(d["index"]), bridge_created=bool(d.get("bridge_created")),
        hosts={h["name"]: HostState.from_json(h) for h in d.get("hosts", [])},
        registry=None if reg is None else ProcRecord.from_json(reg),
        s3=None if s3 is None else ProcRecord.from_json(s3),
        s3_access_key=str(d.get("s3_access_key", "")), s3_secret_key=str(d.get("s3_secret_key", "")),
    )


def all_states() -> list[SandboxState]:
    out = []
    for n in paths.existing_names():
        st = load(n)
        if st is not None:
            out.append(st)
    return out
