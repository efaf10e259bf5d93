"""One sandbox host: identity files, overlay root, network namespace, nspawn boot, readiness.

A host is systemd-nspawn booting the cached base tree through an overlayfs whose upper directory
holds only the host's own files, in its own network namespace on the sandbox bridge. Podman's
storage (/var/lib/containers) is a bind mount of a plain directory, because podman on an overlayfs
root silently falls back to the copying `vfs` driver.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

from . import netops
from .errors import SandboxError
from .netplan import NetPlan
from .procs import ProcRecord, run, spawn_detached
from .state import HostState, SandboxState


def host_dir(st: SandboxState, host: str) -> Path:
    return st.dir / "hosts" / host


def supervisor_script() -> Path:
    """The shipped nspawn supervisor (restarts the host after an in-host reboot)."""
    ref = resources.files("omldeploy.sandbox").joinpath("osb-boot-host.sh")
    path = Path(str(ref))
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def etc_hosts(st: SandboxState) -> str:
    """/etc/hosts of every host: all hosts of the sandbox, the controller/registry and the S3 store."""
    net = st.net
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
             f"{net.bridge_ip} controller registry", f"{net.s3_ip} s3"]
    lines += [f"{h.ip} {h.name}" for h in sorted(st.hosts.values(), key=lambda h: h.number)]
    return "\n".join(lines) + "\n"


def registries_conf(net: NetPlan) -> str:
    """Podman drop-in making this sandbox's registry (plain HTTP) usable on its hosts only."""
    return ("# omldeploy sandbox: local registry on the sandbox bridge (plain HTTP)\n"
            f'[[registry]]\nlocation = "{net.registry}"\ninsecure = true\n')


def prepare_upper(st: SandboxState, host: HostState, pubkey: str) -> None:
    """Write the host's identity (name, machine-id, SSH host keys, authorized key) into its upper dir."""
    d = host_dir(st, host.name)
    upper = d / "upper"
    for sub in ("upper/etc/ssh", "upper/root/.ssh", "upper/etc/containers/registries.conf.d", "work", "root",
                "containers"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (upper / "etc/hostname").write_text(host.name + "\n")
    (upper / "etc/hosts").write_text(etc_hosts(st))
    if not (upper / "etc/machine-id").exists():
        (upper / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    if not (upper / "etc/ssh/ssh_host_ed25519_key").exists():
        run(["ssh-keygen", "-q", "-A", "-f", str(upper)])
    (upper / "root/.ssh").chmod(0o700)
    auth = upper / "root/.ssh/authorized_keys"
    auth.write_text(pubkey)
    auth.chmod(0o600)
    (upper / "etc/containers/registries.conf.d/50-omldeploy-sandbox.conf").write_text(registries_conf(st.net))


def host_pubkey(st: SandboxState, host: str) -> str:
    """The host's ed25519 public key ("type base64"), for known_hosts."""
    pub = host_dir(st, host) / "upper/etc/ssh/ssh_host_ed25519_key.pub"
    return " ".join(pub.read_text().split()[:2])


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def mount_root(st: SandboxState, host: HostState) -> None:
    d = host_dir(st, host.name)
    if is_mounted(d / "root"):
        return
    run(["mount", "-t", "overlay", f"overlay-osb-{st.name}-{host.name}", "-o",
         f"lowerdir={host.rootfs},upperdir={d / 'upper'},workdir={d / 'work'}", str(d / "root")])


def boot(st: SandboxState, host: HostState) -> ProcRecord:
    """Start nspawn (under the supervisor) with the settings this controller needs; return its record."""
    d = host_dir(st, host.name)
    netns = st.net.host_netns(host.name)
    argv = [
        str(supervisor_script()), "-D", str(d / "root"), "--boot",
        "--register=no", "--keep-unit", f"--machine=osb-{st.name}-{host.name}", f"--hostname={host.name}",
        f"--network-namespace-path=/run/netns/{netns}",
        "--capability=all", "--drop-capability=CAP_SYS_TIME", "--system-call-filter=@keyring bpf",
        f"--bind={d / 'containers'}:/var/lib/containers",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
    ]
    return spawn_detached(argv, log=d / "console.log", env={"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"})


def create_and_boot(st: SandboxState, host: HostState, pubkey: str) -> None:
    """Make the host (idempotent for the parts that already exist) and boot it if not running."""
    if host.supervisor is not None and host.supervisor.alive():
        return
    net = st.net
    prepare_upper(st, host, pubkey)
    mount_root(st, host)
    host.mounted = True
    st.save()
    netops.add_namespace_on_bridge(net.host_netns(host.name), net.host_veth(host.number), net.bridge,
                                   host.ip, net.unused_gateway)
    host.supervisor = boot(st, host)
    st.save()


def refresh_etc_hosts(st: SandboxState) -> None:
    """Rewrite /etc/hosts on every host (through the mounted root, so overlayfs sees the change)."""
    text = etc_hosts(st)
    for host in st.hosts.values():
        d = host_dir(st, host.name)
        target = d / "root/etc/hosts" if is_mounted(d / "root") else d / "upper/etc/hosts"
        if target.parent.is_dir():
            target.write_text(text)


def ssh_base(st: SandboxState) -> list[str]:
    """ssh argv prefix using the sandbox's own config (controller key, strict known_hosts)."""
    return ["ssh", "-F", str(st.dir / "ssh_config")]


def wait_ready(st: SandboxState, host: HostState, timeout: float = 180.0) -> tuple[str, float]:
    """Wait until sshd answers and systemd finished booting; return (state, seconds)."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        if host.supervisor is None or not host.supervisor.alive():
            raise SandboxError(f"host {host.name} stopped while booting; see "
                               f"{host_dir(st, host.name) / 'console.log'}")
        try:
            proc = subprocess.run(
                [*ssh_base(st), "-o", "ConnectTimeout=2", "-o", "BatchMode=yes", host.name,
                 "timeout 60 systemctl is-system-running --wait"],
                capture_output=True, text=True, timeout=70, check=False)
            last = proc.stdout.strip() or proc.stderr.strip()
            if proc.stdout.strip() in ("running", "degraded"):
                return proc.stdout.strip(), time.monotonic() - t0
        except subprocess.TimeoutExpired:
            last = "ssh timed out"
        time.sleep(0.3)
    raise SandboxError(f"host {host.name} not ready after {timeout:.0f}s (last answer: {last!r}); "
                       f"see {host_dir(st, host.name) / 'console.log'}")


def remove_host_files(st: SandboxState, host: str) -> None:
    """Delete a host's directory once nothing is mounted there any more."""
    d = host_dir(st, host)
    if d.exists() and not is_mounted(d / "root"):
        shutil.rmtree(d)
