"""The Python view of a running sandbox that the rest of the project (and the e2e fixtures) use.

    sb = Sandbox.load("default")
    sb.hosts_by_os("debian13")[0].ip
    sb.run("h1", "systemctl is-system-running")
    sb.image_ref("postgres")          # 10.99.<k>.1:5000/omnileads/postgres:<default tag>
    sb.s3.endpoint, sb.s3.access_key, sb.s3.secret_key
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import s3store
from .errors import SandboxError
from .s3store import S3Info
from .sshfiles import key_path, ssh_common_args
from .state import SandboxState, load


@dataclass(frozen=True)
class Host:
    """One sandbox host as seen from outside."""

    name: str
    ip: str
    os: str
    number: int


class Sandbox:
    """Read-only handle on a sandbox that `up` created (it does not start or stop anything)."""

    def __init__(self, state: SandboxState) -> None:
        self._st = state

    @classmethod
    def load(cls, name: str = "default") -> Sandbox:
        st = load(name)
        if st is None:
            raise SandboxError(f"no sandbox named {name!r}; run `omldeploy sandbox up --name {name}`")
        return cls(st)

    @property
    def state(self) -> SandboxState:
        """The recorded state (for lifecycle functions such as images.build.build_and_push)."""
        return self._st

    @property
    def name(self) -> str:
        return self._st.name

    @property
    def state_dir(self) -> Path:
        return self._st.dir

    @property
    def hosts(self) -> list[Host]:
        return [Host(h.name, h.ip, h.os, h.number)
                for h in sorted(self._st.hosts.values(), key=lambda h: h.number)]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise SandboxError(f"sandbox {self.name} has no host {name!r} (hosts: "
                           f"{', '.join(h.name for h in self.hosts)})")

    def hosts_by_os(self, os_key: str) -> list[Host]:
        return [h for h in self.hosts if h.os == os_key]

    @property
    def subnet(self) -> str:
        return self._st.net.subnet

    @property
    def controller_ip(self) -> str:
        """The controller's address on the sandbox bridge (hosts reach it as `controller`)."""
        return self._st.net.bridge_ip

    @property
    def ssh_config(self) -> Path:
        return self._st.dir / "ssh_config"

    @property
    def ssh_key(self) -> Path:
        return key_path(self._st)

    @property
    def known_hosts(self) -> Path:
        return self._st.dir / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        """Ansible YAML inventory of the hosts (groups: sandbox, sandbox_debian12, sandbox_debian13)."""
        return self._st.dir / "inventory.yml"

    @property
    def ssh_common_args(self) -> str:
        return ssh_common_args(self._st)

    def ansible_connection_vars(self) -> dict[str, Any]:
        """Connection variables to merge into any inventory that targets sandbox hosts."""
        return {"ansible_user": "root", "ansible_ssh_private_key_file": str(self.ssh_key),
                "ansible_ssh_common_args": self.ssh_common_args,
                "ansible_python_interpreter": "/usr/bin/python3"}

    def ssh_argv(self, host: str, *command: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", host, *command]

    def run(self, host: str, command: str, *, check: bool = True, timeout: float = 120.0,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a host over SSH; with check, a non-zero exit raises SandboxError."""
        proc = subprocess.run(self.ssh_argv(host, command), capture_output=True, text=True,
                              timeout=timeout, input=input_text, check=False)
        if check and proc.returncode != 0:
            raise SandboxError(f"{host}: `{command}` exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    @property
    def registry(self) -> str:
        """host:port of the sandbox registry, as the first part of image references."""
        return self._st.net.registry

    def image_ref(self, key: str, tag: str = "default") -> str:
        """Full reference of a catalog image in the sandbox registry; tag 'default', 'alt' or literal."""
        from .images.catalog import load_catalog

        entry = load_catalog()[key]
        literal = {"default": entry.default, "alt": entry.alt}.get(tag, tag)
        return f"{self.registry}/{entry.repo}:{literal}"

    @property
    def s3(self) -> S3Info:
        """Endpoint and credentials of the sandbox S3 store (started by `up --s3` or `sandbox s3`)."""
        return s3store.info(self._st)
