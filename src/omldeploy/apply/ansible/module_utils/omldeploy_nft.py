"""omldeploy's nftables table on a host: check, atomic apply with a rollback timer, confirmation.

Shipped by Ansible with the omldeploy_firewall module (standard library only); also imported directly
by tests/integration/test_firewall_rollback.py, which runs it in a private network namespace.

Why a rollback timer: a ruleset that cuts the controller's SSH cannot be fixed over SSH. So `apply`
first saves how the table was (absent, or its listing), arms a timer that puts it back, and only then
loads the new ruleset. The controller confirms over a NEW SSH connection (`confirm`): if that
connection cannot be made, the confirmation never comes and the host restores the previous table by
itself after `seconds`. The timer is a transient systemd timer where systemd runs (it survives the
SSH session), else a detached process. Whatever fires it, the restore runs under a lock and only if
the pending token is still the one it was armed for, so a confirmation and the timer cannot both win.

Idempotent: the applied script's hash and the kernel's listing of the table after the apply are kept;
the same script with an unchanged table is "no change", and a table changed behind our back (or
restored by the timer) is applied again.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

TABLE = "inet omldeploy"
STATE_DIR = "/var/lib/omldeploy/firewall"
#: where a confirmed ruleset is kept, loaded at boot by BOOT_UNIT
PERSIST = "/etc/omnileads/firewall/omldeploy.nft"
BOOT_UNIT = "omldeploy-firewall.service"
TIMER_UNIT = "omldeploy-firewall-rollback"
BOOT_UNIT_TEXT = f"""[Unit]
Description=omldeploy host firewall (table {TABLE})
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target
ConditionPathExists={PERSIST}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {PERSIST}

[Install]
WantedBy=sysinit.target
"""


class FirewallError(Exception):
    """A step failed; the message says which and what the host said."""


def nft_bin() -> str:
    found = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else "")
    if not found:
        raise FirewallError("nft is not installed on this host (apt-get install nftables)")
    return found


def _run(cmd: list[str], input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=input_text, check=False)


def listing() -> str | None:
    """The kernel's current `nft list table inet omldeploy`, or None when the table does not exist."""
    proc = _run([nft_bin(), "list", "table", *TABLE.split()])
    return proc.stdout if proc.returncode == 0 else None


def controller_address(environ: dict[str, str] | None = None, pid: int | None = None) -> str:
    """The address the controller's SSH connection comes from: SSH_CONNECTION of this process or, when
    sudo/become dropped it, of the nearest ancestor (the sshd session's shell holds it)."""
    env = os.environ if environ is None else environ
    value = env.get("SSH_CONNECTION", "")
    current = os.getppid() if pid is None else pid
    while not value and current > 1:
        try:
            with open(f"/proc/{current}/environ", "rb") as fh:
                pairs = dict(e.split(b"=", 1) for e in fh.read().split(b"\0") if b"=" in e)
            value = pairs.get(b"SSH_CONNECTION", b"").decode()
            with open(f"/proc/{current}/stat") as fh:
                current = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    if not value:
        raise FirewallError("cannot tell the controller's address (no SSH_CONNECTION): refusing to load a firewall "
                            "that could lock it out")
    return str(ipaddress.ip_address(value.split()[0]))


def with_controller(script: str, address: str) -> str:
    """The rendered script plus the controller's address in its `controller` (or `controller6`) set."""
    ip = ipaddress.ip_address(address)
    name = "controller" if ip.version == 4 else "controller6"
    return script.rstrip("\n") + f"\nadd element {TABLE} {name} {{ {ip} }}\n"


def check(path: str) -> None:
    """`nft -c -f`: parse and validate against the kernel without changing anything."""
    proc = _run([nft_bin(), "-c", "-f", path])
    if proc.returncode != 0:
        raise FirewallError(f"nft -c refused the ruleset: {(proc.stderr or proc.stdout).strip()[-1500:]}")


def _write(path: str, text: str, mode: int = 0o600) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None


@contextmanager
def _locked(state: str) -> Iterator[None]:
    fd = os.open(os.path.join(state, "lock"), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _restore_command(state: str, token: str) -> str:
    """What the timer runs: under the lock, only if `token` is still pending, load the saved table."""
    q = shlex.quote
    lock, pending, rollback, done = (q(os.path.join(state, n)) for n in ("lock", "pending", "rollback.nft",
                                                                          "rolled-back"))
    inner = (f'[ "$(cat {pending} 2>/dev/null)" = {token} ] && {q(nft_bin())} -f {rollback} && '
             f"echo {token} > {done} && rm -f {pending}")
    return f"flock {lock} sh -c {q(inner)}"


def _systemd() -> bool:
    return os.path.isdir("/run/systemd/system") and shutil.which("systemd-run") is not None


def _disarm_timer(state: str) -> None:
    """Stop the systemd timer if that is what armed the rollback (a detached one finds no token)."""
    if _read(os.path.join(state, "launcher")) == "systemd":
        for unit in (f"{TIMER_UNIT}.timer", f"{TIMER_UNIT}.service"):
            _run(["systemctl", "stop", unit])
        _run(["systemctl", "reset-failed", f"{TIMER_UNIT}.timer", f"{TIMER_UNIT}.service"])


def _arm(state: str, token: str, seconds: int, launcher: str) -> None:
    command = _restore_command(state, token)
    _write(os.path.join(state, "launcher"), launcher)
    if launcher == "systemd":
        _disarm_timer(state)
        proc = _run(["systemd-run", f"--unit={TIMER_UNIT}", f"--on-active={seconds}s",
                     "--timer-property=AccuracySec=1s", "--description=omldeploy firewall rollback",
                     "/bin/sh", "-c", command])
        if proc.returncode != 0:
            raise FirewallError(f"could not arm the rollback timer: {(proc.stderr or proc.stdout).strip()[-600:]}")
        return
    with open(os.devnull, "r+b") as null:
        subprocess.Popen(["/bin/sh", "-c", f"sleep {int(seconds)}; {command}"], stdin=null, stdout=null,
                         stderr=null, start_new_session=True, close_fds=True)


def apply(script: str, seconds: int, state: str = STATE_DIR, launcher: str = "auto",
          check_mode: bool = False) -> dict[str, Any]:
    """Load `script` (complete, controller address included) with a rollback after `seconds` unless
    `confirm` comes first. Returns the report; `token` is what confirm needs."""
    digest = hashlib.sha256(script.encode()).hexdigest()
    current = listing()
    pending = _read(os.path.join(state, "pending"))
    if (not pending and current is not None and _read(os.path.join(state, "applied.sha256")) == digest
            and _read(os.path.join(state, "applied.listing")) == current):
        return {"changed": False, "summary": "firewall unchanged"}
    if check_mode:  # nothing written on the host: the script is checked from a private temp file
        with tempfile.NamedTemporaryFile("w", suffix=".nft") as tmp:
            tmp.write(script)
            tmp.flush()
            check(tmp.name)
        return {"changed": True, "summary": "the firewall ruleset would change (checked by nft -c)"}
    os.makedirs(state, mode=0o700, exist_ok=True)
    candidate = os.path.join(state, "next.nft")
    _write(candidate, script)
    check(candidate)
    if launcher == "auto":
        launcher = "systemd" if _systemd() else "detached"
    token = secrets.token_hex(16)
    with _locked(state):
        if not _read(os.path.join(state, "pending")):
            # the table as it is now is what the timer puts back (an unconfirmed earlier apply keeps
            # the table from before it: that is the last state known to let the controller in)
            restore = f"table {TABLE}\ndelete table {TABLE}\n" + (current or "")
            _write(os.path.join(state, "rollback.nft"), restore)
        _write(os.path.join(state, "pending"), token)
        with suppress(FileNotFoundError):
            os.unlink(os.path.join(state, "rolled-back"))
    _arm(state, token, seconds, launcher)
    proc = _run([nft_bin(), "-f", candidate])
    if proc.returncode != 0:
        with _locked(state):
            os.unlink(os.path.join(state, "pending"))
        _disarm_timer(state)
        raise FirewallError(f"nft -f failed (nothing was changed): {(proc.stderr or proc.stdout).strip()[-1500:]}")
    _write(os.path.join(state, "applied.sha256"), digest)
    _write(os.path.join(state, "applied.listing"), listing() or "")
    return {"changed": True, "token": token, "rollback_seconds": seconds, "launcher": launcher,
            "summary": f"firewall loaded; restored in {seconds}s unless confirmed"}


def confirm(token: str, state: str = STATE_DIR, persist: bool = True) -> dict[str, Any]:
    """Keep the ruleset loaded with `token`: disarm the rollback, keep a copy loaded at boot."""
    with _locked(state):
        pending = _read(os.path.join(state, "pending"))
        if pending != token:
            if _read(os.path.join(state, "rolled-back")) == f"{token}\n":
                raise FirewallError("the confirmation came too late: the host already restored its previous "
                                    "firewall (raise firewall_rollback_seconds, or check the SSH path)")
            raise FirewallError("no firewall change is waiting for this confirmation")
        os.unlink(os.path.join(state, "pending"))
    _disarm_timer(state)
    if persist:
        script = _read(os.path.join(state, "next.nft")) or ""
        os.makedirs(os.path.dirname(PERSIST), mode=0o755, exist_ok=True)
        _write(PERSIST, script)
        if _systemd():
            unit = f"/etc/systemd/system/{BOOT_UNIT}"
            if _read(unit) != BOOT_UNIT_TEXT:
                _write(unit, BOOT_UNIT_TEXT, 0o644)
                _run(["systemctl", "daemon-reload"])
            _run(["systemctl", "enable", BOOT_UNIT])
    return {"changed": True, "summary": "firewall confirmed over a new SSH connection"}
