"""Decommission: remove everything a tenant put on a host (phase `destroy` of the host module).

Order: stop every unit of the tenant in one systemd transaction (host units such as the backup timer
too), remove their containers, unit files and named volumes, the rendered files and folders, the
firewall table, the images nobody else uses, the tenant's state and, last, the owner marker, so a
destroy cut half-way is finished by running it again (the marker still names the tenant).

Only paths under the prefixes below are ever removed, whatever the controller sends: a folder list
that somehow held `/etc` must not empty a machine. Check mode lists what exists and would go.
Standard library only (shipped to the host by Ansible).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any

from ansible.module_utils.omldeploy_units import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    run,
    service,
    systemctl,
)

#: the only folders a destroy removes (each, or anything below it)
DIR_ROOTS = ("/etc/omnileads", "/etc/asterisk/custom", "/run/omnileads", "/etc/omldeploy",
             "/usr/local/lib/omldeploy-backup", "/usr/local/lib/omnileads")
#: folders shared with the system, where a destroy removes only the files it is told about
FILE_DIRS = ("/etc/default", "/etc/systemd/system", "/etc/containers/systemd", "/etc/tmpfiles.d", "/usr/local/bin")
STATE_ROOT = "/var/lib/omldeploy"
UNIT_FILES = ("/etc/systemd/system/{}.service", "/etc/containers/systemd/{}.container")
FIREWALL_TABLE = ("inet", "omldeploy")
FIREWALL_FILES = ("/etc/omnileads/firewall/omldeploy.nft", "/etc/systemd/system/omldeploy-firewall.service",
                  "/var/lib/omldeploy/firewall")


def removable(path: str, folder: bool = False) -> bool:
    """May a destroy remove this path? Only an absolute, normalised path under our own folders, or (not as
    a folder) a file directly inside a shared system folder."""
    norm = os.path.normpath(path)
    if not path.startswith("/") or norm != path.rstrip("/"):
        return False
    if any(norm == r or norm.startswith(r + "/") for r in DIR_ROOTS) or norm.startswith(STATE_ROOT + "/"):
        return True
    return not folder and os.path.dirname(norm) in FILE_DIRS


def destroy(p: dict[str, Any], state: dict[str, Any], state_dir: str, owner_file: str, check: bool
            ) -> dict[str, Any]:
    units = sorted({u["name"] for u in p["units"]} | set(state.get("units", [])))
    host_units = sorted(set(p.get("host_units", [])) | set(state.get("host_units", [])))
    containers = sorted({u["container"] for u in p["units"]})
    report: dict[str, Any] = {"units": [], "containers": [], "volumes": [], "files": [], "directories": [],
                              "images": [], "firewall": False, "changed": False}
    loaded = [service(u) for u in units if _loaded(service(u))] + [h for h in host_units if _loaded(h)]
    report["units"] = loaded
    existing = set(_lines(run(["podman", "ps", "-a", "--format", "{{.Names}}"], timeout=120).stdout))
    report["containers"] = [c for c in containers if c in existing]
    have_volumes = set(_lines(run(["podman", "volume", "ls", "--format", "{{.Name}}"], timeout=120).stdout))
    report["volumes"] = [v for v in p.get("volumes", []) if v in have_volumes]
    files = {f for f in [*p.get("files_index", []), *state.get("files", []),
                         *[t.format(u) for u in units for t in UNIT_FILES]] if removable(f)}
    files |= {os.path.join("/etc/systemd/system", h) for h in host_units}
    report["files"] = sorted(f for f in files if os.path.lexists(f) and removable(f))
    dirs = [d["path"] for d in p.get("directories", []) if removable(d["path"], folder=True)] + [state_dir]
    report["directories"] = sorted({d for d in dirs if os.path.isdir(d)}, key=lambda d: (-d.count("/"), d))
    report["firewall"] = run(["nft", "list", "table", *FIREWALL_TABLE], timeout=60).returncode == 0 \
        if shutil.which("nft") else False
    report["images"] = _unused_images(p.get("images", []), set(report["containers"]))
    report["owner_marker"] = os.path.lexists(owner_file)
    report["changed"] = any(report[k] for k in ("units", "containers", "volumes", "files", "directories",
                                                "images", "firewall", "owner_marker"))
    if check or not report["changed"]:
        return report

    if loaded:  # one transaction: the units go down together, no restart cascade between them
        timers = [u for u in loaded if u.endswith(".timer")]
        systemctl("stop", *loaded, *[t.removesuffix(".timer") + ".service" for t in timers], check=False)
        host = [u for u in loaded if not u.endswith(".service") or u in host_units]
        if host:
            systemctl("disable", *host, check=False)
    for c in report["containers"]:
        run(["podman", "rm", "--force", "--ignore", "--volumes", c], timeout=300, check=True)
    for v in report["volumes"]:
        run(["podman", "volume", "rm", "--force", v], timeout=300, check=True)
    if report["firewall"]:
        run(["nft", "delete", "table", *FIREWALL_TABLE], timeout=60, check=True)
    for path in [*report["files"], *FIREWALL_FILES]:
        if os.path.isdir(path) and not os.path.islink(path):
            if removable(path, folder=True):
                shutil.rmtree(path, ignore_errors=True)
        elif removable(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    for d in report["directories"]:
        _rmtree_except(d, owner_file)
    for aside in _asterisk_asides():
        shutil.rmtree(aside, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir("/etc/asterisk")  # only when empty: it was ours alone
    systemctl("daemon-reload", check=False)
    systemctl("reset-failed", check=False)
    for image in report["images"]:
        run(["podman", "rmi", image], timeout=300)
    left = [u for u in loaded if _loaded(u)]
    if left:
        raise RuntimeError(f"still loaded after the removal: {', '.join(left)}; run the destroy again")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(owner_file)  # last: an interrupted destroy still belongs to this tenant
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(owner_file))  # /etc/omnileads, emptied above but for the marker
    return report


def _rmtree_except(path: str, keep: str) -> None:
    """rmtree, but the owner marker (and the folders leading to it) stays until the very end."""
    if not (keep + "/").startswith(path.rstrip("/") + "/") or keep == path:
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        child = os.path.join(path, name)
        if child == keep:
            continue
        if os.path.isdir(child) and not os.path.islink(child):
            _rmtree_except(child, keep)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child)


def _loaded(unit: str) -> bool:
    out = systemctl("show", unit, "-p", "LoadState", check=False).stdout.strip()
    return out not in ("LoadState=not-found", "")


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip()]


def _unused_images(images: list[str], going: set[str]) -> list[str]:
    """The tenant's images that no container other than the tenant's own (about to go) uses."""
    proc = run(["podman", "ps", "-a", "--format", "json"], timeout=120)
    try:
        others = json.loads(proc.stdout or "[]")
    except ValueError:
        return []
    used = {str(c.get("Image", "")) for c in others
            if not set(c.get("Names") or []) & going}
    present = set(_lines(run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"], timeout=120).stdout))
    return sorted(i for i in set(images) if i in present and i not in used)


def _asterisk_asides() -> list[str]:
    """`/etc/asterisk/custom_<id>`: what restores set aside (the seed's habit)."""
    try:
        names = os.listdir("/etc/asterisk")
    except OSError:
        return []
    return [os.path.join("/etc/asterisk", n) for n in names if n.startswith("custom_") or n.startswith("custom.")]
