"""Building Debian trees from the Debian package registry: debootstrap, then apt inside the tree.

Used for the hosts' base root filesystem and for the test images' root filesystem. apt runs in the
tree through `systemd-nspawn` used as a better chroot (own /proc, /dev), sharing the controller's
network because it needs the Debian mirror; services are kept from starting by policy-rc.d.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from .procs import run
from .progress import step
from .recipes import MIRROR

RESOLV_PLACEHOLDER = "# no DNS on the sandbox network; names are in /etc/hosts\n"


def debootstrap(suite: str, target: Path, include: Sequence[str], log: Path) -> None:
    """Create a minbase tree of `suite` with extra packages, logging to `log`."""
    with step(f"debootstrap {suite} into {target} (log {log})"):
        run(["debootstrap", "--variant=minbase", f"--include={','.join(include)}", suite, str(target),
             MIRROR], log=log, timeout=1800)


def in_tree(target: Path, command: str, log: Path, *, timeout: float = 1800) -> None:
    """Run a shell command inside the tree (nspawn as chroot, controller network)."""
    run(["systemd-nspawn", "-q", "-D", str(target), "--register=no", "--keep-unit",
         "--resolv-conf=replace-host", "--setenv=DEBIAN_FRONTEND=noninteractive",
         "sh", "-c", command], log=log, timeout=timeout)


def apt_install(target: Path, packages: Sequence[str], log: Path) -> None:
    """apt-get install (no recommends) inside the tree, with services kept from starting."""
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        with step(f"apt-get install {len(packages)} packages in {target.name}"):
            in_tree(target, "apt-get update -q && apt-get install -y -q --no-install-recommends "
                    + " ".join(packages) + " && apt-get clean", log)
    finally:
        policy.unlink(missing_ok=True)


def trim(target: Path, *, docs: bool) -> None:
    """Drop apt lists and caches (and, for images, docs, man pages and foreign locales)."""
    for rel in ("var/lib/apt/lists", "var/cache/apt"):
        d = target / rel
        if d.is_dir():
            for child in d.iterdir():
                if child.is_dir() and child.name != "partial":
                    shutil.rmtree(child)
                elif child.is_file():
                    child.unlink()
    if docs:
        for rel in ("usr/share/doc", "usr/share/man", "usr/share/info"):
            d = target / rel
            if d.is_dir():
                shutil.rmtree(d)
                d.mkdir()
        loc = target / "usr/share/locale"
        if loc.is_dir():
            for child in loc.iterdir():
                if child.is_dir() and not child.name.startswith("en"):
                    shutil.rmtree(child)
    (target / "etc/resolv.conf").unlink(missing_ok=True)
    (target / "etc/resolv.conf").write_text(RESOLV_PLACEHOLDER)
