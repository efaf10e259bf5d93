"""`omldeploy logs`: the journal of a tenant's units, read over SSH, one stream for all its hosts.

Works without Loki (the operator's first look when something is wrong is often when the log pipeline is
the broken part). Every line is prefixed with its host and component, passes through the tenant's
redactor (a container that prints its DSN must not put the password on the operator's terminal) and
only then through `--grep`, so a grep can never probe a secret.

What runs on the host is `journalctl -o json` with one `-u` per unit the rendered bundle places there:
the units are the tool's own, so `--component` can only name a component that runs on the host, and no
operator text reaches the remote command line except through a checked pattern (`--since`) or a number.
"""

from __future__ import annotations

import heapq
import json
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from omldeploy.apply.ssh import become_prefix, needs_password, ssh_argv
from omldeploy.inventory.model import Tenant
from omldeploy.inventory.problems import InventoryError, Problem
from omldeploy.render.bundle import Bundle
from omldeploy.state.runlog import Redactor

#: `--since`: a relative age (30s, 15m, 2h, 7d) or a date/time; anything else is refused, never passed on.
_RELATIVE = re.compile(r"(\d{1,6})(s|m|h|d)\Z")
_ABSOLUTE = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?\Z")
_UNIT_WORDS = {"s": "s", "m": "min", "h": "h", "d": "d"}  # journalctl's "m" would be read as minutes too,
# but "min" cannot be confused with months ("M") by a reader of the remote command line
MAX_LINES = 1_000_000
_SUFFIXES = (".service", ".timer", ".scope")


@dataclass(frozen=True)
class Query:
    since: str | None = None  # already checked by `since_arg`
    lines: int = 200  # per host: the last N matching lines (with --follow: the backlog before following)
    follow: bool = False
    grep: str | None = None


@dataclass(frozen=True)
class Target:
    """One host and the units whose journal is read there."""

    host: str
    units: tuple[str, ...]  # unit names with their suffix (postgresql.service, oml-backup.timer)
    argv: tuple[str, ...]  # ssh ... -- user@host '<remote command>'


@dataclass(frozen=True)
class Line:
    when: int  # microseconds since the epoch (the journal's __REALTIME_TIMESTAMP)
    host: str
    component: str
    text: str

    def format(self, width: int) -> str:
        return f"{self.host:<{width}} {self.component:<14} | {self.text}"


def since_arg(value: str) -> str:
    """The operator's `--since` as journalctl reads it, or a clear error (exit 2)."""
    value = value.strip()
    m = _RELATIVE.match(value)
    if m:
        return f"-{m.group(1)}{_UNIT_WORDS[m.group(2)]}"
    if _ABSOLUTE.match(value):
        return value
    raise InventoryError([Problem("--since", "since", "is not an age or a date", found=value,
                                  allowed="an age such as 30s, 15m, 2h, 7d, or a date 'YYYY-MM-DD[ HH:MM[:SS]]'")])


def targets(tenant: Tenant, bundle: Bundle, query: Query, host: str | None = None,
            component: str | None = None) -> list[Target]:
    """Which journal to read where, and the ssh call that reads it; an unknown host or component is
    refused, naming what exists."""
    names = [hb.host for hb in bundle.hosts]
    if host is not None and host not in names:
        raise InventoryError([Problem("--host", "host", f"is not a host of tenant {tenant.name}", found=host,
                                      allowed=", ".join(names))])
    known = sorted({u.name for hb in bundle.hosts for u in hb.units}
                   | {_component(n) for hb in bundle.hosts for n in hb.host_units})
    if component is not None and component not in known:
        raise InventoryError([Problem("--component", "component", f"does not run in tenant {tenant.name}",
                                      found=component, allowed=", ".join(known))])
    out: list[Target] = []
    for hb in bundle.hosts:
        if host is not None and hb.host != host:
            continue
        units = [f"{u.name}.service" for u in hb.units] + [_with_suffix(n) for n in hb.host_units]
        if component is not None:
            units = [u for u in units if _component(u) == component]
        if not units:
            continue
        h = tenant.host(hb.host)
        if needs_password(h):
            raise InventoryError([Problem(str(tenant.inventory_path), f"{h.name}.ansible_password",
                                          "logs reads the journal with plain ssh, which cannot use a password",
                                          allowed="key-based SSH (ansible_ssh_private_key_file or an ssh agent)")])
        command = become_prefix(h) + remote_command(tuple(units), query)
        out.append(Target(hb.host, tuple(units), (*ssh_argv(h), command)))
    return out


def remote_command(units: tuple[str, ...], query: Query) -> str:
    """The journalctl call on the host, every word quoted (unit names are ours, the rest is checked)."""
    words = ["journalctl", "--no-pager", "--output=json", "--quiet"]
    words += [f"--unit={u}" for u in units]
    if query.since:
        words.append(f"--since={query.since}")
    if query.lines:
        words.append(f"--lines={query.lines}")
    if query.follow:
        words.append("--follow")
    return " ".join(shlex.quote(w) for w in words)


def parse(host: str, raw: str) -> Line | None:
    """One `journalctl -o json` record as a Line (None for what is not a record)."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    unit = rec.get("_SYSTEMD_UNIT") or rec.get("UNIT") or rec.get("CONTAINER_NAME") or rec.get("SYSLOG_IDENTIFIER")
    if unit == "init.scope":  # systemd's own messages about a unit carry the unit in UNIT
        unit = rec.get("UNIT") or unit
    try:
        when = int(rec.get("__REALTIME_TIMESTAMP", 0))
    except (TypeError, ValueError):
        when = 0
    return Line(when, host, _component(str(unit or "?")), _message(rec.get("MESSAGE")))


def _message(value: Any) -> str:
    """MESSAGE is a string, or a list of bytes when it was not valid UTF-8, or null."""
    if isinstance(value, list):
        try:
            return bytes(int(b) & 0xFF for b in value).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return ""
    return "" if value is None else str(value)


def _component(unit: str) -> str:
    for suffix in _SUFFIXES:
        if unit.endswith(suffix):
            return unit[: -len(suffix)]
    return unit


def _with_suffix(unit: str) -> str:
    return unit if unit.endswith(_SUFFIXES) else f"{unit}.service"


def matcher(grep: str | None) -> Callable[[str], bool]:
    """journalctl's rule: a literal match, case-insensitive unless the text has a capital letter."""
    if not grep:
        return lambda _: True
    if grep.lower() == grep:
        needle = grep
        return lambda text: needle in text.lower()
    return lambda text: grep in text


def cleaned(line: Line, redact: Redactor) -> Line:
    """Redacted, and without terminal control characters (a log line must not drive the terminal)."""
    text = redact(line.text)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\x9b]", "?", text)
    return Line(line.when, line.host, line.component, text)


def _records(host: str, stream: IO[str]) -> Iterator[Line]:
    for raw in stream:
        line = parse(host, raw)
        if line is not None:
            for part in line.text.splitlines() or [""]:
                yield Line(line.when, line.host, line.component, part)


@dataclass
class Outcome:
    printed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # host -> why its journal could not be read


#: ssh's own exit status when the connection failed (not the remote command's)
SSH_FAILED = 255


def read(targets_: list[Target], query: Query, redact: Redactor, out: Callable[[Line], None]) -> Outcome:
    """Read every target's journal concurrently. Without --follow, the lines of all hosts are merged in
    time order (each host's part is bounded by `query.lines`); with --follow they are printed as they
    arrive, until every stream ends or the operator interrupts.

    Without --follow, a read whose SSH connection failed (exit 255: it was cut, or refused on a busy
    sshd, possibly after some lines arrived) is done once more and only the second read counts: the
    window read is the same, so nothing is printed twice. A second failure names the host."""
    keep = matcher(query.grep)
    outcome = Outcome()
    lock = threading.Lock()
    procs: dict[str, subprocess.Popen[str]] = {}
    collected: dict[str, list[Line]] = {t.host: [] for t in targets_}
    ended: dict[str, tuple[int, str]] = {}

    def start(t: Target) -> subprocess.Popen[str]:
        proc = subprocess.Popen(list(t.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
        with lock:
            procs[t.host] = proc
        return proc

    def pump(t: Target, proc: subprocess.Popen[str]) -> None:
        for attempt in (1, 2):
            assert proc.stdout is not None and proc.stderr is not None
            lines: list[Line] = []
            for line in _records(t.host, proc.stdout):
                line = cleaned(line, redact)
                if not keep(line.text):
                    continue
                if query.follow:
                    with lock:
                        out(line)
                        outcome.printed += 1
                else:
                    lines.append(line)
            err = proc.stderr.read()
            rc = proc.wait()
            collected[t.host] = lines
            ended[t.host] = (rc, err)
            if query.follow or rc != SSH_FAILED or attempt == 2:
                return
            proc = start(t)

    threads = [threading.Thread(target=pump, args=(t, start(t)), daemon=True) for t in targets_]
    for th in threads:
        th.start()
    try:
        for th in threads:
            th.join()
    finally:
        with lock:
            running = list(procs.values())
        for p in running:
            if p.poll() is None:
                p.terminate()
    for t in targets_:
        rc, err = ended.get(t.host) or (procs[t.host].wait(), "")
        if rc != 0 and not (query.follow and rc < 0):  # a follow ends with our terminate: not a failure
            outcome.failed[t.host] = redact(err.strip().splitlines()[-1] if err.strip() else f"exit {rc}")
    if not query.follow:
        for line in heapq.merge(*collected.values(), key=lambda x: x.when):
            out(line)
            outcome.printed += 1
    return outcome
