"""The cached base root filesystem of sandbox hosts, one per OS and recipe hash.

Hosts never copy it: each host mounts it read-only as the lower layer of its own overlayfs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import paths
from .debian import apt_install, debootstrap, trim
from .progress import say
from .recipes import BASE_INCLUDE, CONTAINERS_CONF, MASKED_UNITS, PODMAN_PACKAGES, SSHD_CONF, OsRecipe


def rootfs_dir(rec: OsRecipe) -> Path:
    """Where the finished tree of this recipe lives."""
    return paths.CACHE / "rootfs" / f"{rec.key}-{rec.cache_key()}"


def ensure_rootfs(rec: OsRecipe) -> Path:
    """Return the cached tree for this OS, building it on first use (debootstrap + podman)."""
    final = rootfs_dir(rec)
    with paths.file_lock(f"rootfs-{rec.key}"):
        if (final / ".omldeploy-sandbox-done").exists():
            return final
        say(f"building the {rec.key} host root filesystem ({rec.suite}, {rec.podman_note}); "
            "this happens once per recipe")
        tmp = final.with_name(final.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        log = final.with_name(final.name + ".log")
        log.write_text("")
        debootstrap(rec.suite, tmp, BASE_INCLUDE, log)
        apt_install(tmp, PODMAN_PACKAGES, log)
        _configure(tmp)
        trim(tmp, docs=False)
        (tmp / ".omldeploy-sandbox-done").write_text(rec.cache_key() + "\n")
        tmp.rename(final)
        prune_stale(rec)
        return final


def prune_stale(rec: OsRecipe) -> None:
    """Delete trees of older recipes of this OS that no sandbox still boots from."""
    from .state import all_states

    in_use = {h.rootfs for st in all_states() for h in st.hosts.values()}
    current = rootfs_dir(rec)
    for old in current.parent.glob(f"{rec.key}-*"):
        if old.is_dir() and old != current and str(old) not in in_use and not old.name.endswith(".tmp"):
            say(f"removing stale root filesystem {old.name}")
            shutil.rmtree(old)
            old.with_name(old.name + ".log").unlink(missing_ok=True)


def _configure(root: Path) -> None:
    """Podman, sshd and unit settings shared by every host of this OS (per-host files go in the upper)."""
    conf = root / "etc/containers"
    (conf / "registries.conf.d").mkdir(parents=True, exist_ok=True)
    (conf / "containers.conf").write_text(CONTAINERS_CONF)
    sshd = root / "etc/ssh/sshd_config.d"
    sshd.mkdir(parents=True, exist_ok=True)
    (sshd / "omldeploy-sandbox.conf").write_text(SSHD_CONF)
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    for want in ("podman.service", "podman-auto-update.service"):
        (root / "etc/systemd/system/default.target.wants" / want).unlink(missing_ok=True)
    system = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = system / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
