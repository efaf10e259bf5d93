"""Bringing a named sandbox up and down, and reporting its status.

`up` is idempotent: it creates only what is missing and boots only hosts that are not running.
`down` works from the recorded state plus the names derived from the sandbox's index, so it also
cleans up after a crash halfway through `up`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import hosts as hostmod
from . import netops, paths, registry, s3store, sshfiles
from .clock import consume_clock_warp
from .errors import SandboxError
from .netplan import MAX_HOSTS, NetPlan, choose_index
from .procs import ProcRecord, run, stop
from .progress import say, step
from .recipes import recipe
from .rootfs import ensure_rootfs
from .state import HostState, SandboxState, all_states, load


def require_root() -> None:
    """The sandbox creates namespaces, bridges and mounts: say plainly that it needs root."""
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (it creates network namespaces, a bridge, overlay "
                           "mounts and nspawn containers); run it as root, e.g. with sudo")


@dataclass(frozen=True)
class UpRequest:
    """What `up` should make sure exists."""

    name: str = "default"
    hosts: int | None = None          # total wanted; None: keep what exists (at least 1)
    add: int = 0                      # hosts to append after the existing ones
    oses: tuple[str, ...] = ("debian12",)  # cycled over the hosts being created
    registry: bool = True
    s3: bool = False


def _new_state(name: str) -> SandboxState:
    with paths.file_lock("network"):
        existing = load(name)
        if existing is not None:
            return existing
        taken = {s.index for s in all_states()} | netops.used_subnet_indexes()
        index = choose_index(name, taken)
        if index is None:
            raise SandboxError("no free 10.99.<k>.0/24 subnet left for a new sandbox; run `down` on old ones")
        st = SandboxState(name=name, index=index)
        st.save()
        return st


def _plan_hosts(st: SandboxState, req: UpRequest) -> list[HostState]:
    """HostStates to create (existing hosts are kept as they are, whatever --os says)."""
    have = len(st.hosts)
    want = have + req.add if req.add else max(req.hosts or 0, have, 1 if req.hosts is None else 0)
    if want > MAX_HOSTS:
        raise SandboxError(f"at most {MAX_HOSTS} hosts per sandbox")
    for o in req.oses:
        recipe(o)
    new: list[HostState] = []
    numbers = sorted(h.number for h in st.hosts.values())
    next_no = (numbers[-1] if numbers else 0) + 1
    for i in range(want - have):
        os_key = req.oses[i % len(req.oses)]
        number = next_no + i
        new.append(HostState(name=f"h{number}", number=number, os=os_key, rootfs="",
                             ip=st.net.host_ip(number)))
    return new


INOTIFY_INSTANCES = 4096


def raise_inotify_limits() -> None:
    """Each test host runs its own systemd, journald, udev... and they all share the machine's
    per-user inotify instance limit (default 128): past ~10 hosts, boots fail with "Failed to create
    inotify object: Too many open files". Raise it (never lower it); it is a controller-only setting."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        current = int(path.read_text().strip())
        if current < INOTIFY_INSTANCES:
            path.write_text(str(INOTIFY_INSTANCES))
            say(f"raised fs.inotify.max_user_instances from {current} to {INOTIFY_INSTANCES} for the test hosts")
    except (OSError, ValueError) as exc:
        say(f"could not raise fs.inotify.max_user_instances ({exc}); many hosts may fail to boot")


def up(req: UpRequest) -> SandboxState:
    """Create/boot the sandbox described by `req` and wait until every host is ready."""
    require_root()
    paths.check_name(req.name)
    consume_clock_warp()
    raise_inotify_limits()
    st = _new_state(req.name)
    net = st.net
    new_hosts = _plan_hosts(st, req)
    needed = sorted({h.os for h in new_hosts})
    # cold caches: the per-OS builds are mostly waiting on the mirror, so they run side by side
    with ThreadPoolExecutor(max_workers=max(1, len(needed))) as pool:
        built = dict(zip(needed, pool.map(lambda o: str(ensure_rootfs(recipe(o))), needed), strict=True))
    for h in new_hosts:
        h.rootfs = built[h.os]
    for h in new_hosts:
        st.hosts[h.name] = h
    st.save()
    for h in st.hosts.values():
        if not Path(h.rootfs).is_dir():
            raise SandboxError(f"host {h.name}'s root filesystem {h.rootfs} is gone; "
                               f"run `down --name {st.name}`")
    if netops.ensure_bridge(net.bridge, net.bridge_ip):
        st.bridge_created = True
        st.save()
    elif not st.bridge_created:
        st.bridge_created = True  # ours by name: osb<k> is only ever made by this sandbox
        st.save()
    pub = sshfiles.ensure_key(st)
    t0 = time.monotonic()
    booting = [h for h in st.hosts.values() if h.supervisor is None or not h.supervisor.alive()]
    for h in sorted(st.hosts.values(), key=lambda h: h.number):
        hostmod.create_and_boot(st, h, pub)
    hostmod.refresh_etc_hosts(st)
    sshfiles.write_all(st)
    if req.registry:
        registry.start(st)
    if req.s3:
        s3store.start(st)
    for h in sorted(booting, key=lambda h: h.number):
        state, secs = hostmod.wait_ready(st, h)
        say(f"{h.name} {h.ip} {h.os}: {state} after {time.monotonic() - t0:.1f}s "
            f"(ssh answered in {secs:.1f}s)")
    return st


def down(name: str) -> bool:
    """Remove everything the sandbox created; returns False if there was nothing to remove."""
    require_root()
    paths.check_name(name)
    st = load(name)
    d = paths.state_dir(name)
    if st is None:
        if d.exists():
            _kill_namespace_stragglers(name)
            _unmount_all_under(d)
            _remove_tree(d)
            return True
        return False
    net = st.net
    with step(f"stopping sandbox {name}"):
        records: list[ProcRecord] = [h.supervisor for h in st.hosts.values() if h.supervisor is not None]
        records += [r for r in (st.registry, st.s3) if r is not None]
        killed = stop(records, grace=15.0)
        for rec in killed:
            say(f"had to SIGKILL pid {rec.pid} ({rec.comm})")
        stragglers = _kill_namespace_stragglers(name)
        if stragglers:
            say(f"killed {stragglers} process(es) still running inside the hosts")
    _unmount_all_under(d)
    for ns in _our_netns(name):
        netops.delete_netns(ns)
    for link in _our_links(net):
        netops.delete_link(link)
    if st.bridge_created:
        netops.delete_link(net.bridge)
    leftovers = _mounts_under(d)
    if leftovers:
        raise SandboxError(f"could not unmount {', '.join(leftovers)}; state kept in {d}")
    _remove_tree(d)
    return True


def namespace_pids(inodes: set[tuple[int, int]]) -> list[int]:
    """Processes whose network namespace is one of `inodes` (device, inode pairs)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(entry / "ns" / "net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            pids.append(int(entry.name))
    return pids


def _kill_namespace_stragglers(name: str, *, wait: float = 10.0) -> int:
    """SIGKILL every process still living in one of the sandbox's host network namespaces.

    Killing nspawn does not end the host it ran: the host's init is re-parented and its services
    (podman cleanup among them) keep deleting files under the state directory, which made the
    removal below race with them. Killing a host's init ends its whole PID namespace, containers
    included. Returns how many processes had to be killed.
    """
    inodes: set[tuple[int, int]] = set()
    for ns in _our_netns(name):
        try:
            st = os.stat(Path("/run/netns") / ns)
        except OSError:
            continue
        inodes.add((st.st_dev, st.st_ino))
    if not inodes:
        return 0
    victims = namespace_pids(inodes)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and namespace_pids(inodes):
        time.sleep(0.1)
    left = namespace_pids(inodes)
    if left:
        raise SandboxError(f"processes {left[:10]} inside sandbox {name} survived SIGKILL; "
                           f"state kept in {paths.state_dir(name)}")
    return len(victims)


def _remove_tree(d: Path) -> None:
    """rmtree that tolerates entries vanishing underneath it (a late cleanup inside a host)."""
    def gone_is_fine(_func: object, _path: str, info: tuple[type[BaseException], BaseException, object]) -> None:
        if not isinstance(info[1], FileNotFoundError):
            raise info[1]

    for attempt in range(3):
        shutil.rmtree(d, onerror=gone_is_fine)
        if not d.exists():
            return
        time.sleep(0.2 * (attempt + 1))
    raise SandboxError(f"could not remove {d}; remove it by hand")


def _our_netns(name: str) -> list[str]:
    prefix = f"osb-{name}-"
    base = Path("/run/netns")
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.name.startswith(prefix))


def _our_links(net: NetPlan) -> list[str]:
    base = Path("/sys/class/net")
    hostp = f"osb{net.index}h"
    return sorted(p.name for p in base.iterdir()
                  if p.name == net.s3_veth or (p.name.startswith(hostp) and p.name[len(hostp):].isdigit()))


def _mounts_under(d: Path) -> list[str]:
    prefix = str(d) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)


def _unmount_all_under(d: Path) -> None:
    for _ in range(3):
        points = _mounts_under(d)
        if not points:
            return
        for p in points:
            if run(["umount", p], check=False).returncode != 0:
                run(["umount", "-l", p], check=False)
        time.sleep(0.2)


def status_lines(name: str | None = None) -> list[str]:
    """Human-readable status of one or all sandboxes."""
    states = [s for s in all_states() if name is None or s.name == name]
    if not states:
        return [f"no sandbox named {name}" if name else "no sandboxes"]
    out: list[str] = []
    for st in states:
        net = st.net
        reg = "up" if st.registry is not None and st.registry.alive() else "down"
        s3 = "up" if st.s3 is not None and st.s3.alive() else "down"
        out.append(f"sandbox {st.name}: subnet {net.subnet} bridge {net.bridge} "
                   f"registry {net.registry} ({reg}) s3 {net.s3_endpoint} ({s3})")
        out.append(f"  ssh -F {st.dir / 'ssh_config'} <host>; inventory {st.dir / 'inventory.yml'}")
        for h in sorted(st.hosts.values(), key=lambda h: h.number):
            alive = h.supervisor is not None and h.supervisor.alive()
            out.append(f"  {h.name:5} {h.ip:15} {h.os:9} {'running' if alive else 'stopped'}")
    return out
