#!/usr/bin/python3
"""Ansible module run ON each host: compare the rendered bundle with the host, apply, report.

One call per phase keeps SSH round-trips per host to a minimum:
  stage    -- ensure Podman and directories, write changed files atomically, pull missing images,
              remember which units must restart (persisted, so a failed run is finished by the next one).
              Nothing is stopped or restarted in this phase, so every image is on the host before any
              component goes down.
  activate -- daemon-reload if units changed, remove units no longer placed here, (re)start exactly
              the units whose files changed (and their same-host dependents), in start order, waiting
              for each health check; runs the declared hooks (e.g. database creation).
  settle   -- after the last activate of a run with several tiers: the crash-loop check of every unit
              they (re)started, once each has been up a few seconds (one wait per run, not per tier).
  status   -- unit state, running image and health of every unit, changing nothing.
  destroy  -- `tenant destroy`: everything of the tenant leaves the host (module_utils/omldeploy_destroy.py).
In check mode `stage` reports what would change (diffs with secret values masked) and writes nothing.
Only the Python standard library is used on the host.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped,import-not-found,unused-ignore]
from ansible.module_utils.omldeploy_calls import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    count,
)
from ansible.module_utils.omldeploy_destroy import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    destroy,
)
from ansible.module_utils.omldeploy_drain import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    READY,
    current,
    put_back,
    take_out,
)
from ansible.module_utils.omldeploy_promtargets import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    targets as prometheus_targets,
)
from ansible.module_utils.omldeploy_safefs import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    ensure_dir,
    file_mode,
    read_nofollow,
)
from ansible.module_utils.omldeploy_safefs import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    write_atomic as safe_write,
)
from ansible.module_utils.omldeploy_timing import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    Clock,
)
from ansible.module_utils.omldeploy_units import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    HealthError,
    StartRefused,
    is_active,
    is_enabled,
    journal,
    n_restarts,
    probe,
    run,
    start_units,
    systemctl,
    wait_healthy,
)

STATE_ROOT = "/var/lib/omldeploy"
#: Which tenant this host belongs to (issue 12, H2): written by the first stage, checked by every later
#: stage and activate, so a second tenant pointed at the same address by mistake changes nothing here.
OWNER_FILE = "/etc/omnileads/omldeploy-owner"
UNIT_DIRS = {"unit": "/etc/systemd/system", "quadlet": "/etc/containers/systemd"}


# ----------------------------------------------------------------------------- state

def state_path(tenant: str) -> str:
    return os.path.join(STATE_ROOT, tenant, "state.json")


def load_state(tenant: str) -> dict[str, Any]:
    try:
        with open(state_path(tenant), encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, ValueError):
        return {"units": [], "files": [], "pending": [], "host_units": [], "reload": False}


def save_state(tenant: str, state: dict[str, Any]) -> None:
    ensure_dir(os.path.dirname(state_path(tenant)), 0o700)
    safe_write(state_path(tenant), json.dumps(state, indent=1, sort_keys=True).encode(), 0o600)


# ----------------------------------------------------------------------------- owner

def owner() -> str:
    """The tenant named by this host's owner marker ('' when the host has none yet)."""
    data = read_nofollow(OWNER_FILE)
    return "" if data is None else bytes(data).decode("utf-8", "replace").strip()


def check_owner(tenant: str) -> None:
    """Refuse (before anything is touched) a tenant other than the one this host belongs to."""
    found = owner()
    if found and found != tenant:
        raise RuntimeError(
            f"this host belongs to tenant '{found}' ({OWNER_FILE}), not to '{tenant}': nothing was changed. "
            f"Two tenants must not share a host (their units, env files and certificates would overwrite "
            f"each other). Fix the host addresses of tenant '{tenant}'; if tenant '{found}' really is gone "
            f"from this host, delete {OWNER_FILE} on it and re-run")


def claim(tenant: str, check: bool) -> bool:
    """Check the owner marker and write it when the host has none; True when it was (or would be) written."""
    check_owner(tenant)
    if owner():
        return False
    if not check:
        write_atomic(OWNER_FILE, (tenant + "\n").encode(), 0o644)
    return True


# ----------------------------------------------------------------------------- podman

def podman_version() -> tuple[int, int]:
    proc = run(["podman", "version", "--format", "{{.Client.Version}}"])
    match = re.match(r"(\d+)\.(\d+)", proc.stdout.strip())
    if not match:
        proc = run(["podman", "--version"])
        match = re.search(r"(\d+)\.(\d+)", proc.stdout)
    if not match:
        raise RuntimeError(f"cannot read the Podman version: {proc.stdout.strip()} {proc.stderr.strip()}")
    return int(match.group(1)), int(match.group(2))


def ensure_podman(check: bool) -> tuple[bool, str]:
    """Install Podman from the distribution when missing (never from a third-party URL)."""
    if shutil.which("podman"):
        return False, ""
    if check:
        return True, "podman would be installed"
    if shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        proc = subprocess.run(["apt-get", "install", "-y", "-q", "podman", "runc"], capture_output=True, text=True,
                              env=env, timeout=900)
    elif shutil.which("dnf"):
        proc = subprocess.run(["dnf", "install", "-y", "podman"], capture_output=True, text=True, timeout=900)
    else:
        raise RuntimeError("podman is not installed and neither apt-get nor dnf is available")
    if proc.returncode != 0 or not shutil.which("podman"):
        raise RuntimeError("podman is not installed and installing it failed: "
                           + (proc.stderr or proc.stdout).strip()[-400:]
                           + " — install podman on this host (or give it access to its package mirror) and re-run")
    return True, "podman installed"


def present_images() -> set[str]:
    """Every local image reference, in one podman call (one `image exists` per image costs ~0.3 s each)."""
    proc = run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"], timeout=120)
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def pull(image: str, attempts: int = 3) -> int:
    """Pull `image`; its size in bytes (0 when Podman does not say)."""
    last = ""
    for i in range(attempts):
        proc = run(["podman", "pull", "--quiet", image], timeout=1800)
        if proc.returncode == 0:
            size = run(["podman", "image", "inspect", "--format", "{{.Size}}", image], timeout=60).stdout.strip()
            return int(size) if size.isdigit() else 0
        last = (proc.stderr or proc.stdout).strip()
        time.sleep(2 * (i + 1))
    raise RuntimeError(f"cannot pull {image}: {last[-500:]}")


def pull_all(clock: Clock, images: list[str]) -> None:
    """Pull `images` one after the other, each timed. Not in parallel: Podman commits layers under one
    storage lock and decompresses on the host's cores, and 4 pulls at once made an AIO stage slower
    (12.9 s against 9.1 s on the sandbox), the breakdown showed."""
    for image in images:
        with clock.timed("pull", image) as row:
            row["bytes"] = pull(image)


# ----------------------------------------------------------------------------- files

def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str) -> bytes | None:
    """Current content of a file we manage; a symlink on the way is refused (see omldeploy_safefs)."""
    return read_nofollow(path)  # type: ignore[no-any-return]


def write_atomic(path: str, data: bytes, mode: int, uid: int = 0) -> None:
    """Atomic, owned by root (or by `uid`, the user a container reads the file as), never through a
    symlink (omldeploy_safefs)."""
    safe_write(path, data, mode, owner=(uid, uid))


def file_owner(path: str) -> int | None:
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return None


def up_to_date(path: str, current: bytes | None, data: bytes, mode: int, uid: int | None) -> bool:
    """The file holds `data` with `mode`, and belongs to `uid` where the bundle names an owner. Only
    there: Podman's `:U` chowns some root-written files (the HAProxy certificates) at every container
    start, and that is not drift."""
    return (current == data and file_mode(path) == mode
            and (uid is None or file_owner(path) == uid))


def masked_diff(path: str, old: bytes | None, new: bytes, secret: bool) -> str:
    if secret:
        old_keys = _env_keys(old or b"")
        new_keys = _env_keys(new)
        if old_keys is not None and new_keys is not None:
            lines = [f"+ {k}=***" for k in new_keys if k not in old_keys]
            lines += [f"- {k}=***" for k in old_keys if k not in new_keys]
            lines += [f"~ {k}=*** (value changed)" for k in new_keys
                      if k in old_keys and old_keys[k] != new_keys[k]]
            return "\n".join(lines) if lines else "(mode or formatting changed)"
        return "(secret content changed; not shown)"
    old_text = (old or b"").decode("utf-8", "replace").splitlines()
    new_text = new.decode("utf-8", "replace").splitlines()
    diff = difflib.unified_diff(old_text, new_text, f"{path} (host)", f"{path} (rendered)", lineterm="", n=1)
    return "\n".join(list(diff)[:200])


def _env_keys(data: bytes) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            return None
        key, value = line.split("=", 1)
        out[key] = sha(value.encode())
    return out


# ----------------------------------------------------------------------------- hooks

def run_hooks(hooks: list[str]) -> None:
    for hook in hooks:
        proc = run(["/bin/sh", "-c", hook], timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"hook failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}")


# ----------------------------------------------------------------------------- phases

def select_style(requested: str) -> tuple[str, str]:
    major, minor = podman_version()
    version = f"{major}.{minor}"
    if requested in ("classic", "quadlet"):
        if requested == "quadlet" and (major, minor) < (4, 4):
            raise RuntimeError(f"podman_unit_style is quadlet but this host has Podman {version} (Quadlet needs 4.4+)")
        return requested, version
    return ("quadlet" if (major, minor) >= (4, 4) else "classic"), version


def stage(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    check = module.check_mode
    tenant = p["tenant"]
    clock = Clock()
    result: dict[str, Any] = {"changed_files": [], "diffs": {}, "pulled": [], "to_pull": [], "removed_units": [],
                              "notes": [], "timings": clock.rows}
    if claim(tenant, check):
        result["changed_files"].append(OWNER_FILE)
    state = load_state(tenant)
    with clock.timed("podman", "check"):
        installed, note = ensure_podman(check)
        if note:
            result["notes"].append(note)
        if installed and check:
            style, version = (p["unit_style"] if p["unit_style"] != "auto" else "unknown"), "missing"
        else:
            style, version = select_style(p["unit_style"])
    result["style"], result["podman_version"] = style, version
    skip_kind = {"classic": "quadlet", "quadlet": "unit"}.get(style)

    # Pull first: a missing or unreachable image fails the run before any file on the host changes.
    units = p["units"]
    images = sorted({u["image"] for u in units} | set(p.get("extra_images", [])))
    with clock.timed("images", "present"):
        have = present_images() if shutil.which("podman") else set()
    missing = [image for image in images if image not in have]
    if check:
        result["to_pull"] = missing
    elif missing:
        pull_all(clock, missing)
        result["pulled"] = missing

    for d in p["directories"]:
        if not os.path.isdir(d["path"]) or os.path.islink(d["path"]):
            result["changed_files"].append(d["path"] + "/")
            if not check:
                ensure_dir(d["path"], int(d["mode"], 8))

    tz = p.get("timezone")
    if tz and os.path.exists(f"/usr/share/zoneinfo/{tz}"):
        # Link /etc/localtime directly: timedatectl would also call settimeofday(), which can warp the
        # clock of a machine hosting containers (see docs); containers get TZ from their env anyway.
        target = f"/usr/share/zoneinfo/{tz}"
        if os.path.realpath("/etc/localtime") != os.path.realpath(target):
            result["changed_files"].append("/etc/localtime")
            if not check:
                tmp = "/etc/localtime.omldeploy-tmp"
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(target, tmp)
                os.replace(tmp, "/etc/localtime")
                write_atomic("/etc/timezone", (tz + "\n").encode(), 0o644)

    wanted_files: list[str] = []
    reload_needed = False
    with clock.timed("files", f"{len(p['files'])} compared"):
        for f in p["files"]:
            if f["kind"] == skip_kind:
                continue
            path = f["path"]
            wanted_files.append(path)
            data = base64.b64decode(f["content"])
            mode = int(f["mode"], 8)
            current = read(path)
            if current is not None and f.get("only_if_missing"):
                continue
            uid = None if f.get("owner") is None else int(f["owner"])
            if up_to_date(path, current, data, mode, uid):
                continue
            result["changed_files"].append(path)
            if f["kind"] in ("unit", "quadlet", "hostunit"):
                reload_needed = True
            if check:
                result["diffs"][path] = masked_diff(path, current, data, bool(f.get("secret")))
            else:
                write_atomic(path, data, mode, int(uid or 0))

    names = [u["name"] for u in units]
    # Files of the other unit style for our units (style switched, or Podman upgraded): remove them.
    stale_files = []
    if skip_kind:
        for u in names:
            other = os.path.join(UNIT_DIRS[skip_kind], u + (".container" if skip_kind == "quadlet" else ".service"))
            if os.path.exists(other) and any(o in state.get("files", []) for o in (other,)):
                stale_files.append(other)
    removed = [] if p.get("partial") else [u for u in state.get("units", []) if u not in names]
    result["removed_units"] = removed
    for path in stale_files:
        result["changed_files"].append(path + " (removed)")
        reload_needed = True
        if not check:
            os.unlink(path)

    changed = set(result["changed_files"])
    restart = {u["name"] for u in units if changed & set(u["files"])}
    restart |= set(state.get("pending", [])) & set(names)
    # same-host dependents restart with what they depend on
    grew = True
    while grew:
        grew = False
        for u in units:
            if u["name"] not in restart and restart & set(u["after"]):
                restart.add(u["name"])
                grew = True
    result["restart"] = [n for n in names if n in restart]
    if p.get("calls") and not check:
        # whether the `calls` step must wait: it is skipped (no round trip) unless calls are up now
        with clock.timed("calls", "counted"):
            result["calls"] = calls(p, result["restart"])


    changed_host_units = sorted({os.path.basename(f["path"]) for f in p["files"]
                                 if f["kind"] == "hostunit" and f["path"] in changed})
    if not check:
        state.update({
            "restart_host_units": sorted(set(state.get("restart_host_units", [])) | set(changed_host_units)),
            "pending": result["restart"],
            "reload": bool(state.get("reload")) or reload_needed or bool(removed),
            "removed": sorted(set(state.get("removed", [])) | set(removed)),
            "style": style,
        })
        save_state(tenant, state)
    result["changed"] = bool(result["changed_files"] or result["pulled"] or removed)
    result["seconds"] = clock.total()
    return result


def activate(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    tenant = p["tenant"]
    check_owner(tenant)
    state = load_state(tenant)
    units = sorted(p["units"], key=lambda u: (u["start_order"], u["name"]))
    style = state.get("style") or select_style(p["unit_style"])[0]
    clock = Clock()
    result: dict[str, Any] = {"restarted": [], "started": [], "stopped": [], "health": {}, "reloaded": False,
                              "timings": clock.rows}
    for name in state.get("removed", []):
        if is_active(name):
            systemctl("stop", f"{name}.service", check=False)
            result["stopped"].append(name)
        systemctl("disable", f"{name}.service", check=False)
        for d, ext in (("/etc/systemd/system", ".service"), ("/etc/containers/systemd", ".container")):
            path = os.path.join(d, name + ext)
            if os.path.exists(path):
                os.unlink(path)
        state["reload"] = True
    if state.get("reload"):
        with clock.timed("daemon-reload"):
            systemctl("daemon-reload")
        result["reloaded"] = True
        state["reload"] = False
    state["removed"] = []
    if not p.get("partial"):
        retire_host_units(state, p)
    restart_hu = set(state.get("restart_host_units", []))
    for hu in p.get("host_units", []):
        if not is_enabled_file(hu):
            systemctl("enable", hu, check=False)
            start_units([hu])
        elif hu in restart_hu:  # e.g. a timer whose schedule changed: re-arm it
            start_units([hu], "restart")
    state["restart_host_units"] = []
    pending = list(state.get("pending", []))
    force = set(p.get("force_restart") or [])
    # A forced restart (restart_* actions) changes no setting, so the set goes down and up in one systemd
    # transaction (ordered by After=): one short outage instead of one per unit. Health is still
    # checked unit by unit, in start order, below.
    batch = [u for u in units if u["name"] in force and u["enabled"] and is_active(u["name"])]
    drain = p.get("drain")

    def out_of_balancer() -> None:
        """Before the first restart of a running unit: no balancer sends this node requests."""
        if drain and "drain" not in result:
            with clock.timed("drain", "out of the balancers"):
                result["drain"] = take_out(drain)

    if batch:
        out_of_balancer()
        for u in batch:
            with clock.timed("hooks", u["name"]):
                run_hooks(u.get("pre_start", []))
        with clock.timed("restart", ", ".join(u["name"] for u in batch)):
            start_or_fail(module, result, tenant, state, pending, [u["name"] for u in batch], "restart")
    batched = {u["name"] for u in batch}
    for u in units:
        name = u["name"]
        needs_restart = name in pending or name in force
        if not u["enabled"]:
            if style == "classic" and is_enabled(name):
                systemctl("disable", f"{name}.service", check=False)
            if needs_restart and is_active(name):
                # the active HA node keeps running with the new settings
                run_hooks(u.get("pre_start", []))
                start_or_fail(module, result, tenant, state, pending, [name], "restart")
                result["restarted"].append(name)
            pending = [x for x in pending if x != name]
            state["pending"] = pending
            save_state(tenant, state)
            continue
        if style == "classic" and not is_enabled(name):
            systemctl("enable", f"{name}.service")
        active = is_active(name)
        if name in batched:
            result["restarted"].append(name)
        elif needs_restart or not active:
            if active:
                out_of_balancer()
            with clock.timed("hooks", name):
                run_hooks(u.get("pre_start", []))
            # a start job that ran and failed is reported below, with the journal, by the health wait
            with clock.timed("restart" if active else "start", name):
                start_or_fail(module, result, tenant, state, pending, [name], "restart" if active else "start")
            (result["restarted"] if active else result["started"]).append(name)
        if name in batched or needs_restart or not active:
            try:
                seconds, detail = wait_healthy(u)
            except HealthError as exc:
                state["pending"] = pending
                save_state(tenant, state)
                result.update(failed=True, failed_unit=name, failure=exc.kind, journal=journal(name))
                module.fail_json(msg=str(exc), report=result)
            clock.add("health", name, seconds)
            result["health"][name] = {"seconds": round(seconds, 2), "detail": detail, "restarts": n_restarts(name)}
            if u.get("post_start"):
                with clock.timed("hooks", name):
                    run_hooks(u.get("post_start", []))
        pending = [x for x in pending if x != name]
        state["pending"] = pending
        save_state(tenant, state)
    if p.get("settle_later") and not drain:
        # the run's last step (phase `settle`) checks these once for every tier: one wait per run, not
        # one per tier (a balanced node is never deferred: it goes back into HAProxy only once checked)
        watch = dict(state.get("settle_watch") or {})
        for name, h in result["health"].items():
            watch[name] = {"restarts": h["restarts"], "healthy_at": time.time()}
        state["settle_watch"] = watch
        result["settle_pending"] = bool(watch)  # the settle step runs only where this is true
    else:
        with clock.timed("settle", "crash-loop check"):
            settle(module, units, result, tenant, state)
    if drain and ("drain" in result or current(drain) != READY):
        # healthy again (or a failed earlier run left it out): the balancers may send requests again
        with clock.timed("drain", "back into the balancers"):
            result["undrain"] = put_back(drain)
    if p.get("partial"):
        state["units"] = sorted(set(state.get("units", [])) | {u["name"] for u in units})
        state["files"] = sorted(set(state.get("files", [])) | set(p.get("files_index", [])))
    else:
        state["units"] = [u["name"] for u in units]
        state["files"] = p.get("files_index", [])
    state["host_units"] = p.get("host_units", [])
    save_state(tenant, state)
    result["changed"] = bool(result["restarted"] or result["started"] or result["stopped"] or result["reloaded"]
                             or "undrain" in result)
    result["seconds"] = clock.total()
    return result


def calls(p: dict[str, Any], pending: list[str] | None = None) -> dict[str, Any]:
    """One answer of the `calls` step (engine.calls_step asks again until `done`): which running units
    that drop calls will restart in the coming activate (stage left them pending, or a restart action
    forces them) and how many channels Asterisk has up. Nothing restarting: done at once, AMI not asked.
    The stage asks once too (`pending`: its own restart list), so that the step runs only when calls are up."""
    tenant = p["tenant"]
    check_owner(tenant)
    spec = p["calls"] or {}
    restarts = set(load_state(tenant).get("pending", []) if pending is None else pending)
    restarts |= set(p.get("force_restart") or [])
    restarting = [u for u in spec.get("units", []) if u in restarts and is_active(u)]
    if not restarting:
        return {"needed": False, "done": True, "changed": False}
    answer = count(spec)
    channels = answer["channels"]
    return {"needed": True, "restarting": restarting, "channels": channels, "error": answer.get("error"),
            "done": not channels, "waiting": bool(channels), "changed": False}


def start_or_fail(module: AnsibleModule, result: dict[str, Any], tenant: str, state: dict[str, Any],
                  pending: list[str], names: list[str], verb: str) -> None:
    """Run a start; when systemd refuses it, remember the pending restarts and fail with that reason
    (a refusal is not a health problem, and the operator must not wait on a health timeout for it)."""
    try:
        start_units(names, verb)
    except StartRefused as exc:
        state["pending"] = pending
        save_state(tenant, state)
        unit = exc.units[0]
        result.update(failed=True, failed_unit=unit, failure="refused", journal=journal(unit))
        module.fail_json(msg=str(exc), report=result)


# Files omldeploy creates outside any component and removes again when the inventory stops asking for
# them (scheduled backups). Component files are never removed this way: a component that goes away is
# handled by the unit removal above, and operator-owned files (Asterisk custom dialplan) stay.
RETIRABLE = ("/etc/omldeploy/backup/", "/usr/local/lib/omldeploy-backup/", "/etc/systemd/system/omldeploy-backup-")


def retire_host_units(state: dict[str, Any], p: dict[str, Any]) -> None:
    wanted = set(p.get("host_units", []))
    for hu in state.get("host_units", []):
        if hu not in wanted:
            systemctl("disable", "--now", hu, check=False)
    index = set(p.get("files_index", []))
    gone = [f for f in state.get("files", []) if f not in index and f.startswith(RETIRABLE)]
    for path in gone:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if gone:
        systemctl("daemon-reload")
    # a shipped library directory goes as a whole once nothing in it is wanted (Python may have left
    # __pycache__ there)
    lib = RETIRABLE[1]
    for top in sorted({lib + f[len(lib):].split("/", 1)[0] for f in gone if f.startswith(lib)}):
        if not any(w.startswith(top + "/") for w in index) and os.path.isdir(top):
            shutil.rmtree(top, ignore_errors=True)


#: how long a unit that passed its health check must stay up before a run calls it a success
SETTLE_SECONDS = 3.0


def settle_watched(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    """Phase `settle`: the crash-loop check of the units the run's activates left to watch, once they
    have each been up SETTLE_SECONDS (units of an early tier usually already have: no wait at all)."""
    tenant = p["tenant"]
    check_owner(tenant)
    state = load_state(tenant)
    watch: dict[str, Any] = state.get("settle_watch") or {}
    clock = Clock()
    result: dict[str, Any] = {"checked": sorted(watch), "timings": clock.rows, "changed": False}
    if watch:
        wait = max(float(w["healthy_at"]) for w in watch.values()) + SETTLE_SECONDS - time.time()
        with clock.timed("settle", "crash-loop check"):
            time.sleep(max(0.0, min(wait, SETTLE_SECONDS)))
            state["settle_watch"] = {}
            save_state(tenant, state)
            for name, w in sorted(watch.items()):
                if not is_active(name) or n_restarts(name) != w["restarts"]:
                    state["pending"] = sorted(set(state.get("pending", [])) | {name})
                    save_state(tenant, state)
                    result.update(failed=True, failed_unit=name, journal=journal(name))
                    module.fail_json(msg=f"{name}.service became healthy, then stopped or restarted (crash loop)",
                                     report=result)
    result["seconds"] = clock.total()
    return result


def settle(module: AnsibleModule, units: list[dict[str, Any]], result: dict[str, Any], tenant: str,
           state: dict[str, Any]) -> None:
    """A component that passed its health check must still be up a moment later: catches crash loops
    (a process that listens, then exits on a bad setting) before the run is called a success."""
    touched = [u for u in units if u["name"] in result["health"]]
    if not touched:
        return
    time.sleep(SETTLE_SECONDS)
    for u in touched:
        name = u["name"]
        if not is_active(name) or n_restarts(name) != result["health"][name]["restarts"]:
            state["pending"] = sorted(set(state.get("pending", [])) | {name})
            save_state(tenant, state)
            result.update(failed=True, failed_unit=name, journal=journal(name))
            module.fail_json(msg=f"{name}.service became healthy, then stopped or restarted (crash loop)",
                             report=result)


def is_enabled_file(unit: str) -> bool:
    enabled: str = systemctl("is-enabled", unit, check=False).stdout.strip()
    active: str = systemctl("is-active", unit, check=False).stdout.strip()
    return enabled == "enabled" and active == "active"


def status(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    out = []
    prometheus: dict[str, Any] | None = None  # the tenant's Prometheus, when it runs here and is healthy
    for u in sorted(p["units"], key=lambda u: (u["start_order"], u["name"])):
        name = u["name"]
        props = systemctl("show", f"{name}.service", "-p", "ActiveState,SubState,ActiveEnterTimestampMonotonic",
                          check=False).stdout
        info = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
        image = ""
        proc = run(["podman", "inspect", "--format", "{{.ImageName}}", u["container"]], timeout=30)
        if proc.returncode == 0:
            image = proc.stdout.strip()
        healthy, detail = (False, "not running")
        if info.get("ActiveState") == "active":
            healthy, detail = probe(u["health"], u["container"])
        uptime = None
        mono = info.get("ActiveEnterTimestampMonotonic", "0")
        if mono.isdigit() and int(mono) > 0:
            uptime = round(time.clock_gettime(time.CLOCK_MONOTONIC) - int(mono) / 1e6, 1)
        out.append({"unit": name, "state": info.get("ActiveState", "unknown"), "sub": info.get("SubState", ""),
                    "image": image, "want_image": u["image"], "healthy": healthy, "detail": detail,
                    "uptime": uptime, "enabled": u["enabled"]})
        if name == "prometheus" and healthy and u["health"].get("port"):
            prometheus = u["health"]
    result: dict[str, Any] = {"units": out, "changed": False,
                               "timers": [timer_status(t) for t in p.get("host_units", []) if t.endswith(".timer")]}
    if prometheus is not None:
        # which targets it reaches: a healthy unit may still be unreachable to it
        result["prometheus"] = prometheus_targets(prometheus.get("host") or "127.0.0.1", int(prometheus["port"]))
    return result


def timer_status(timer: str) -> dict[str, Any]:
    """A timer (scheduled backup): armed or not, when it fires next, how its last run ended."""
    props = systemctl("show", timer, "-p", "ActiveState,NextElapseUSecRealtime,LastTriggerUSec", check=False).stdout
    info = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
    service = timer[: -len(".timer")] + ".service"
    sprops = systemctl("show", service, "-p", "Result,ActiveState", check=False).stdout
    sinfo = dict(line.split("=", 1) for line in sprops.splitlines() if "=" in line)
    return {"timer": timer, "state": info.get("ActiveState", "unknown"),
            "next": info.get("NextElapseUSecRealtime", ""), "last": info.get("LastTriggerUSec", ""),
            "last_result": sinfo.get("Result", ""), "running": sinfo.get("ActiveState") == "activating"}


def _repository(ref: str) -> str:
    """`registry:5000/omnileads/redis:1.2` -> `registry:5000/omnileads/redis` (a port is not a tag)."""
    ref = ref.split("@", 1)[0]
    head, sep, tail = ref.rpartition(":")
    return head if sep and "/" not in tail else ref


def recycle(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    """Free the space old versions take: exited containers and unused images of this tenant's image
    repositories, plus dangling layers. Images the placed units (or their hooks) use are kept, and so is
    anything of other repositories (other tenants or the operator's own)."""
    check_owner(p["tenant"])
    keep = {u["image"] for u in p["units"]} | set(p.get("extra_images", []))
    repos = {_repository(i) for i in keep}
    containers = json.loads(run(["podman", "ps", "-a", "--format", "json"], timeout=120, check=True).stdout or "[]")
    used_ids = {c.get("ImageID", "") for c in containers}
    exited = [c for c in containers if str(c.get("State", "")).lower() in ("exited", "created", "stopped")
              and _repository(str(c.get("Image", ""))) in repos]
    images = json.loads(run(["podman", "images", "--format", "json"], timeout=120, check=True).stdout or "[]")
    exited_ids = {c.get("ImageID", "") for c in exited}
    doomed: list[tuple[str, list[str], int]] = []
    for img in images:
        names = [str(n) for n in (img.get("Names") or [])]
        ours = [n for n in names if _repository(n) in repos]
        if not ours or any(n in keep for n in names):
            continue
        if img.get("Id") in used_ids and img.get("Id") not in exited_ids:
            continue
        doomed.append((str(img.get("Id")), ours, int(img.get("Size") or 0)))
    report: dict[str, Any] = {"containers": [str((c.get("Names") or ["?"])[0]) for c in exited],
                              "images": sorted(n for _, names, _ in doomed for n in names),
                              "bytes": sum(size for _, _, size in doomed), "changed": False}
    if module.check_mode:
        return report
    for c in exited:
        run(["podman", "rm", "--force", str(c.get("Id"))], timeout=120)
    for image_id, _, _ in doomed:
        proc = run(["podman", "rmi", image_id], timeout=300)
        if proc.returncode != 0:  # in use again (a unit started meanwhile): keep it, say why
            report.setdefault("kept", []).append(f"{image_id[:12]}: {proc.stderr.strip()[-200:]}")
    dangling = run(["podman", "image", "prune", "--force"], timeout=300)
    report["dangling"] = len([x for x in dangling.stdout.split() if x.strip()])
    report["changed"] = bool(exited or doomed or report["dangling"])
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tenant": {"type": "str", "required": True},
            "phase": {"type": "str", "required": True,
                      "choices": ["stage", "activate", "status", "recycle", "calls", "settle", "destroy"]},
            "settle_later": {"type": "bool", "default": False},
            "files": {"type": "list", "elements": "dict", "default": []},
            "files_index": {"type": "list", "elements": "str", "default": []},
            "directories": {"type": "list", "elements": "dict", "default": []},
            "units": {"type": "list", "elements": "dict", "default": []},
            "host_units": {"type": "list", "elements": "str", "default": []},
            "extra_images": {"type": "list", "elements": "str", "default": []},
            "unit_style": {"type": "str", "default": "auto"},
            "timezone": {"type": "str", "default": ""},
            "partial": {"type": "bool", "default": False},
            "force_restart": {"type": "list", "elements": "str", "default": []},
            "drain": {"type": "dict", "default": None},
            "calls": {"type": "dict", "default": None},
            "volumes": {"type": "list", "elements": "str", "default": []},  # destroy: named volumes
            "images": {"type": "list", "elements": "str", "default": []},  # destroy: the tenant's images
        },
        supports_check_mode=True,
    )
    p = module.params
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", p["tenant"]):
        module.fail_json(msg="bad tenant name")
    try:
        if p["phase"] == "stage":
            report = stage(module, p)
        elif p["phase"] == "activate":
            report = {"skipped": True, "changed": False} if module.check_mode else activate(module, p)
        elif p["phase"] == "recycle":
            report = recycle(module, p)
        elif p["phase"] == "calls":
            report = calls(p)
        elif p["phase"] == "destroy":
            check_owner(p["tenant"])  # never another tenant's host
            report = destroy(p, load_state(p["tenant"]), os.path.dirname(state_path(p["tenant"])), OWNER_FILE,
                             module.check_mode)
        elif p["phase"] == "settle":
            report = {"skipped": True, "changed": False} if module.check_mode else settle_watched(module, p)
        else:
            report = status(module, p)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(msg=str(exc), report={"failed": True, "error": str(exc)})
    module.exit_json(changed=bool(report.get("changed")), report=report)


if __name__ == "__main__":
    main()
