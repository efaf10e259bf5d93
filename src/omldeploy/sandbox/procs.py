"""Running commands and owning long-lived processes safely.

The sandbox starts daemons (nspawn supervisors, the registry, the S3 store) that outlive the
command that started them. It records each one as PID + kernel start time + command name and only
ever signals a PID whose record still matches, so a recycled PID of an unrelated process is never
touched, even after a crash or a reboot of the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxError


def run(argv: Sequence[str], *, check: bool = True, input_text: str | None = None,
        env: Mapping[str, str] | None = None, timeout: float | None = None,
        log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; on failure raise SandboxError with the command's stderr.

    With `log`, stdout and stderr go to that file instead (for long, chatty build steps).
    """
    full_env = None if env is None else {**os.environ, **env}
    try:
        if log is not None:
            proc = _run_logged(argv, log, full_env, timeout)
        else:
            proc = subprocess.run(list(argv), capture_output=True, text=True, input=input_text,
                                  env=full_env, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise SandboxError(f"command not found: {argv[0]} (run .ci/e2e-setup.sh to install what the "
                           "sandbox needs)") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"command timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        where = f"; see {log}" if log is not None else ""
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise SandboxError(f"command failed ({proc.returncode}): {' '.join(argv)}{where}\n{detail}".rstrip())
    return proc


HEARTBEAT = 15.0


def _run_logged(argv: Sequence[str], log: Path, env: Mapping[str, str] | None,
                timeout: float | None) -> subprocess.CompletedProcess[str]:
    """Run with output appended to `log`, printing a progress line (with the log's last line)
    every HEARTBEAT seconds, so a multi-minute debootstrap does not look hung."""
    from .progress import say

    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n")
        fh.flush()
        child = subprocess.Popen(list(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=None if env is None else dict(env))
        t0 = time.monotonic()
        while True:
            try:
                rc = child.wait(timeout=HEARTBEAT)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - t0
                if timeout is not None and elapsed > timeout:
                    child.kill()
                    child.wait()
                    raise subprocess.TimeoutExpired(list(argv), timeout) from None
                say(f"  ... {argv[0]} running for {elapsed:.0f}s: {_last_line(log)}")
    return subprocess.CompletedProcess(list(argv), rc, "", "")


def _last_line(log: Path) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 400))
            lines = fh.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:100] if lines else ""


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(comm, starttime in clock ticks) of a live process, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: it ends at the LAST ')'.
    lpar, rpar = raw.index("("), raw.rindex(")")
    comm = raw[lpar + 1:rpar]
    rest = raw[rpar + 2:].split()
    if rest and rest[0] == "Z":  # a zombie is as good as gone
        return None
    return comm, int(rest[19])


def pid_exists(pid: int) -> bool:
    """True while a (non-zombie) process with this PID exists, whatever it is."""
    return _stat_fields(pid) is not None


@dataclass(frozen=True)
class ProcRecord:
    """Identity of a process we started: enough to tell it apart from a later process with the same PID."""

    pid: int
    starttime: int
    comm: str

    @staticmethod
    def of(pid: int) -> ProcRecord:
        """Record a process that was just started."""
        fields = _stat_fields(pid)
        if fields is None:
            raise SandboxError(f"process {pid} exited right after it was started")
        return ProcRecord(pid, fields[1], fields[0])

    def alive(self) -> bool:
        """True if the PID still belongs to the process that was recorded."""
        fields = _stat_fields(self.pid)
        return fields is not None and fields == (self.comm, self.starttime)

    def signal(self, sig: signal.Signals) -> bool:
        """Send a signal only if this is still our process; returns whether it was sent."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def children(self) -> list[ProcRecord]:
        """Direct children (used to reach the nspawn process under its supervisor)."""
        out: list[ProcRecord] = []
        try:
            kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return out
        for k in kids:
            fields = _stat_fields(int(k))
            if fields is not None:
                out.append(ProcRecord(int(k), fields[1], fields[0]))
        return out

    def to_json(self) -> dict[str, int | str]:
        return {"pid": self.pid, "starttime": self.starttime, "comm": self.comm}

    @staticmethod
    def from_json(data: Mapping[str, object]) -> ProcRecord:
        return ProcRecord(int(str(data["pid"])), int(str(data["starttime"])), str(data["comm"]))


def spawn_detached(argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> ProcRecord:
    """Start a daemon in its own session, stdin from /dev/null, output to `log`; return its record."""
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out, open(os.devnull, "rb") as devnull:
        try:
            proc = subprocess.Popen(list(argv), stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                    env=full_env, start_new_session=True, close_fds=True)
        except FileNotFoundError as exc:
            raise SandboxError(f"command not found: {argv[0]}") from exc
    # Popen would reap it on garbage collection; the record is what we keep.
    rec = ProcRecord.of(proc.pid)
    return rec


def stop(records: Sequence[ProcRecord], *, grace: float = 10.0) -> list[ProcRecord]:
    """SIGTERM all (in parallel), wait up to `grace` seconds, then SIGKILL what is left (and children).

    Returns the records that were still alive and had to be killed.
    """
    for rec in records:
        rec.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(r.alive() for r in records):
        _reap(records)
        time.sleep(0.1)
    killed = [r for r in records if r.alive()]
    for rec in killed:
        kids = rec.children()
        rec.signal(signal.SIGKILL)
        for kid in kids:
            kid.signal(signal.SIGKILL)
    if killed:
        end = time.monotonic() + 5
        while time.monotonic() < end and any(r.alive() for r in killed):
            _reap(killed)
            time.sleep(0.1)
    _reap(records)
    return killed


def _reap(records: Sequence[ProcRecord]) -> None:
    """Collect our recorded daemons if this same Python process started them (else they are not
    our children and init reaps them); never touches other children of the process."""
    for rec in records:
        try:
            os.waitpid(rec.pid, os.WNOHANG)
        except ChildProcessError:
            continue
