"""systemd units and health checks on a host, shared by the omldeploy host modules.

Shipped by Ansible with every module that imports it (ANSIBLE_MODULE_UTILS points here), so it uses
the Python standard library only.

Every start or restart goes through `start_units`, which first clears the unit's failed state: a unit
that crash-looped into systemd's start limit (StartLimitBurst=5 within 10 s by default) refuses any
further start until `reset-failed`, so a rollback that comes a few seconds after a failed upgrade would
otherwise be refused and leave the component down. Failures are told apart, because each asks the
operator for something else: systemd refused the start (the program never ran), the process crashed
or gave up (see its journal), or it runs but did not pass its health check in time (slow or wrong
settings).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

# systemctl's own words when it will not even try to start a unit (as opposed to a start job that ran
# the program and failed)
REFUSALS = ("start request repeated too quickly", "start-limit", "is masked", "not found",
            "refusing", "has a bad unit file setting", "unit is not loaded")


def run(cmd: list[str], timeout: int = 600, check: bool = False, input_text: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}")
    return proc


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["systemctl", *args], timeout=300, check=check)


def service(unit: str) -> str:
    """`nginx` -> `nginx.service`; names that already carry a suffix (timers) are kept."""
    return unit if "." in unit else f"{unit}.service"


def is_active(unit: str) -> bool:
    return systemctl("is-active", "--quiet", service(unit), check=False).returncode == 0


def is_enabled(unit: str) -> bool:
    out = systemctl("is-enabled", service(unit), check=False).stdout.strip()
    return out in ("enabled", "generated", "static", "alias", "indirect", "enabled-runtime")


def props(unit: str, *names: str) -> dict[str, str]:
    out = systemctl("show", service(unit), "-p", ",".join(names), check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def n_restarts(unit: str) -> str:
    return props(unit, "NRestarts").get("NRestarts", "")


def journal(unit: str, lines: int = 25) -> str:
    proc = run(["journalctl", "-u", service(unit), "-n", str(lines), "--no-pager", "-o", "cat"], timeout=30)
    return proc.stdout.strip()


class StartRefused(RuntimeError):
    """systemd did not run the unit at all (start limit still hit, masked, bad unit file)."""

    def __init__(self, units: list[str], verb: str, why: str) -> None:
        names = ", ".join(service(u) for u in units)
        super().__init__(f"systemd REFUSED to {verb} {names}: {why} (the program never ran; this is not a "
                         "slow health check)")
        self.units = units


def start_units(units: list[str], verb: str = "start") -> None:
    """Clear the units' failed/start-limit state, then `systemctl start|restart` them in one job.

    A start job that ran the program and failed is not an error here: Restart=on-failure may bring the
    unit back, and the health wait that follows reports what happened. Only a refusal raises.
    """
    if not units:
        return
    names = [service(u) for u in units]
    systemctl("reset-failed", *names, check=False)
    before = {u: props(u, "InvocationID").get("InvocationID", "") for u in units}
    proc = systemctl(verb, *names, check=False)
    if proc.returncode == 0:
        return
    text = (proc.stderr or proc.stdout).strip()
    first = text.splitlines()[0] if text else f"exit {proc.returncode}"
    if any(r in text.lower() for r in REFUSALS):
        raise StartRefused(units, verb, first)
    # systemctl words a refused start (start limit) like a failed one; what tells them apart is whether
    # the unit got a new invocation, i.e. whether its program ran at all
    never_ran = [u for u in units if not is_active(u)
                 and props(u, "InvocationID").get("InvocationID", "") == before[u]]
    if never_ran:
        result = props(never_ran[0], "Result").get("Result", "")
        raise StartRefused(never_ran, verb, f"{first} (unit result: {result or 'unknown'})")


def why_failed(unit: str) -> str:
    """One line on why systemd gave up on a unit, from its properties."""
    info = props(unit, "Result", "NRestarts", "ExecMainCode", "ExecMainStatus")
    result, restarts = info.get("Result", ""), info.get("NRestarts", "0")
    status = info.get("ExecMainStatus", "")
    if result == "start-limit-hit":
        return (f"it crashed {restarts or 'several'} time(s) in a row and systemd stopped restarting it "
                f"(start limit hit; last exit status {status or '?'})")
    if result in ("exit-code", "signal", "core-dump"):
        if restarts.isdigit() and int(restarts) >= 3:  # systemd 257 keeps the exit result after the limit
            return (f"it crashed {restarts} times in a row and systemd stopped restarting it (start limit; "
                    f"last: {result}, status {status or '?'})")
        return f"its process ended ({result}, status {status or '?'}) after {restarts or 0} restart(s)"
    if result == "timeout":
        return "systemd timed out starting it"
    return f"systemd reports it failed ({result or 'unknown result'})"


class HealthError(RuntimeError):
    """A unit that did not become healthy; `kind` is `crashed` (systemd gave up on it) or `timeout`
    (running, or still restarting, but the health check never passed)."""

    def __init__(self, unit: str, kind: str, seconds: float, detail: str) -> None:
        if kind == "crashed":
            msg = f"{unit}.service failed {seconds:.1f}s after its start: {detail}"
        else:
            msg = (f"{unit}.service did not become healthy within {seconds:.0f}s: it is running (or restarting) "
                   f"but its health check did not pass ({detail})")
        super().__init__(msg)
        self.unit = unit
        self.kind = kind
        self.detail = detail


def probe(health: dict[str, Any], container: str) -> tuple[bool, str]:
    kind = health.get("kind", "active")
    host = health.get("host") or "127.0.0.1"
    port = int(health.get("port") or 0)
    if kind == "tcp":
        try:
            with socket.create_connection((host, port), timeout=2):
                return True, f"tcp {host}:{port} open"
        except OSError as exc:
            return False, f"tcp {host}:{port}: {exc}"
    if kind in ("http", "https"):
        url = f"{kind}://{host}:{port}{health.get('path', '/')}"
        ctx = None
        if kind == "https":
            # liveness, not identity: the certificate may not name the LAN address probed here
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
                return resp.status < 500, f"{url} -> {resp.status}"
        except urllib.error.HTTPError as exc:
            return exc.code < 500, f"{url} -> {exc.code}"
        except (OSError, ssl.SSLError) as exc:
            return False, f"{url}: {exc}"
    if kind == "exec":
        proc = run(["podman", "exec", container, *health.get("command", [])], timeout=30)
        return proc.returncode == 0, f"exec {' '.join(health.get('command', []))} -> {proc.returncode}"
    return True, "unit active"


def wait_healthy(unit: dict[str, Any]) -> tuple[float, str]:
    """Seconds until the unit's health check passed, and the probe's last word; HealthError otherwise."""
    health = unit["health"]
    timeout = int(health.get("timeout", 90))
    name = unit["name"]
    t0 = time.monotonic()
    detail = ""
    while True:
        if not is_active(name):
            # Restart=on-failure may bring it back; give it the same deadline
            state = systemctl("is-active", service(name), check=False).stdout.strip()
            detail = f"unit {name}.service is {state}"
            if state == "failed":  # systemd gave up restarting it: no point waiting any longer
                raise HealthError(name, "crashed", time.monotonic() - t0, why_failed(name))
        else:
            ok, detail = probe(health, unit["container"])
            if ok:
                return time.monotonic() - t0, detail
        elapsed = time.monotonic() - t0
        if elapsed > timeout:
            raise HealthError(name, "timeout", timeout, detail)
        # most units pass within a second or two: ask often at first (a fixed 0.5 s cost each of them
        # 0.25 s on average, seconds per install), then back off to 0.5 s for slow starters
        time.sleep(min(0.5, 0.05 + elapsed / 8))
