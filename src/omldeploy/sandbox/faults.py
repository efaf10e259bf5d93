"""Failures an e2e test inflicts on one sandbox host, as a hypervisor or a switch would.

    power_off(sb, "h1")            clean poweroff (the host's systemd stops its units; SIGTERM to nspawn)
    power_off(sb, "h1", hard=True) power cut: every process of the host is SIGKILLed at once
                                   Either way its address then vanishes from the network (link down): a
                                   powered-off machine does not even refuse connections, while the
                                   host's left-over network namespace would.
    power_on(sb, "h1")             boot it again (same root, same disks) and wait until it is ready
    cut(sb, "h1") / heal(sb, "h1") take the host's link off the bridge and back (a partition: the host
                                   keeps running and sees nobody, nobody sees it)
    netns_argv(sb, "h1")           argv prefix that runs a controller program inside the host's network
                                   namespace (it reaches the host's own services while the link is cut)

Root only, like the rest of the lifecycle. Nothing here changes the controller's clock or routes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from . import hosts as hostmod
from .api import Sandbox
from .errors import SandboxError
from .lifecycle import namespace_pids
from .procs import run
from .state import HostState, SandboxState


def _host_state(sb: Sandbox, host: str) -> tuple[SandboxState, HostState]:
    st = sb.state
    if host not in st.hosts:
        raise SandboxError(f"sandbox {sb.name} has no host {host!r}")
    return st, st.hosts[host]


def _netns_pids(netns: str) -> list[int]:
    try:
        ref = os.stat(Path("/run/netns") / netns)
    except OSError:
        return []
    return namespace_pids({(ref.st_dev, ref.st_ino)})


def power_off(sb: Sandbox, host: str, *, hard: bool = False, timeout: float = 90.0) -> float:
    """Power the host off and wait until it is gone; returns the seconds it took."""
    st, h = _host_state(sb, host)
    sup = h.supervisor
    t0 = time.monotonic()
    if sup is None or not sup.alive():
        return 0.0
    netns = st.net.host_netns(host)
    if hard:
        sup.signal(signal.SIGKILL)
        for pid in _netns_pids(netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    else:
        sup.signal(signal.SIGTERM)
    while time.monotonic() - t0 < timeout:
        if not sup.alive() and not _netns_pids(netns):
            _link(sb, host, "down")
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SandboxError(f"host {host} still running {timeout:.0f} s after power-off")


def power_on(sb: Sandbox, host: str, *, timeout: float = 180.0) -> float:
    """Boot a powered-off host again and wait until systemd finished booting; returns the seconds."""
    st, h = _host_state(sb, host)
    if h.supervisor is not None and h.supervisor.alive():
        return 0.0
    t0 = time.monotonic()
    _link(sb, host, "up")
    hostmod.mount_root(st, h)
    h.supervisor = hostmod.boot(st, h)
    st.save()
    hostmod.wait_ready(st, h, timeout)
    return time.monotonic() - t0


def _link(sb: Sandbox, host: str, updown: str) -> None:
    st, h = _host_state(sb, host)
    run(["ip", "link", "set", st.net.host_veth(h.number), updown])


def cut(sb: Sandbox, host: str) -> None:
    """Partition: the host's veth goes down on the bridge side; the host keeps running."""
    _link(sb, host, "down")


def heal(sb: Sandbox, host: str) -> None:
    _link(sb, host, "up")


def netns_argv(sb: Sandbox, host: str) -> list[str]:
    st, _h = _host_state(sb, host)
    return ["ip", "netns", "exec", st.net.host_netns(host)]
