"""What goes into the base root filesystem of a sandbox host, per OS, and its cache key.

A host is Debian minbase + systemd + sshd + python3 + rootful Podman configured for running
inside systemd-nspawn on this kind of controller (see docs/sandbox.md for why each setting is
there). The cache key is a hash of everything below, so editing the recipe rebuilds the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from .errors import SandboxError

#: Bump when the build procedure (not only the data below) changes.
RECIPE_VERSION = 3

MIRROR = "http://deb.debian.org/debian"

BASE_INCLUDE = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "python3", "iputils-ping",
    "procps", "curl", "ca-certificates", "netcat-openbsd", "less", "tzdata", "rsync",
    # `firewall: nftables` (omldeploy_firewall) needs nft on the host, as a real host would have it
    "nftables",
)

PODMAN_PACKAGES = ("podman", "runc", "conmon", "netavark", "aardvark-dns", "catatonit")

CONTAINERS_CONF = """\
# omldeploy sandbox host (systemd-nspawn on a hybrid-cgroup controller)
[containers]
# the host's cgroup2 tree has no pids controller: podman must not write pids.max
pids_limit = 0
# /proc/sys is read-only in the hosts (it is partly shared with the controller), so netavark
# cannot set up bridge networks; the product runs every container with --network=host anyway
netns = "host"
[engine]
# crun fails raising RLIMIT_MEMLOCK without CAP_SYS_RESOURCE; runc does not
runtime = "runc"
[network]
# Debian ships a CNI conflist; this keeps podman from probing CNI on every call
network_backend = "netavark"
"""

SSHD_CONF = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

#: Units that would try the network or run on their own: masked so hosts stay quiet and repeatable.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "fstrim.timer", "e2scrub_all.timer",
    "e2scrub_reap.service", "systemd-timesyncd.service", "podman-auto-update.timer",
    "podman-auto-update.service", "podman-restart.service", "man-db.timer", "dpkg-db-backup.timer",
    # a container cannot load kernel modules; on Debian 13 this unit fails and degrades the host
    "systemd-modules-load.service",
)


@dataclass(frozen=True)
class OsRecipe:
    """One supported host OS."""

    key: str            # what the operator types: debian12, debian13
    suite: str          # Debian suite for debootstrap
    podman_note: str    # what the operator gets, for status output and docs

    def cache_key(self) -> str:
        """Hash of the whole recipe (data + procedure version), used in the cache directory name."""
        blob = json.dumps({
            "v": RECIPE_VERSION, "os": asdict(self), "mirror": MIRROR, "include": BASE_INCLUDE,
            "podman": PODMAN_PACKAGES, "containers": CONTAINERS_CONF, "sshd": SSHD_CONF,
            "masked": MASKED_UNITS,
        }, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


RECIPES: dict[str, OsRecipe] = {
    "debian12": OsRecipe("debian12", "bookworm", "Podman 4.3, systemd 252"),
    "debian13": OsRecipe("debian13", "trixie", "Podman 5.4, systemd 257"),
}


def recipe(os_key: str) -> OsRecipe:
    """Look up an OS by the name the operator used."""
    try:
        return RECIPES[os_key]
    except KeyError:
        raise SandboxError(f"unknown OS {os_key!r}; choose one of: {', '.join(RECIPES)}") from None
