"""`omldeploy fleet upgrade`: one release rolled over many tenants in waves, a canary first.

Each tenant's upgrade is the ordinary one (ops/upgrade.py): its own pre-upgrade backup, health gates
and automatic rollback. What the rollout adds is the order and the brake:

- waves (`1,10%,rest`): the tenants that need the upgrade, in name order, cut into waves; a wave starts
  only when the one before ended within the failure budget;
- `max_failures` (default 0): one failed tenant more than allowed halts the rollout. Tenants not yet
  started in the halted wave stay pending, later waves never start, the tenants already upgraded stay
  upgraded, and a failed tenant has been rolled back by its own upgrade;
- its state (`instances/.omldeploy/rollouts/<id>.json`, written after every tenant) makes it resumable:
  `--resume` runs what is pending, interrupted or failed, in the same waves; a record per run goes to the
  fleet ledger (`instances/.omldeploy/ledger.jsonl`), and each tenant's own ledger has its upgrade.

A tenant already at the target (its last successful run deployed exactly these versions) is skipped, so
re-running a finished rollout is a no-op. A tenant whose inventory is invalid, or that shares a host with
another tenant, is excluded up front and named.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omldeploy.inventory import load_tenant
from omldeploy.inventory.model import Tenant
from omldeploy.inventory.overlap import overlaps_among, refused
from omldeploy.inventory.problems import InventoryError
from omldeploy.inventory.state_errors import writing
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.ops.fleet import tenant_folders
from omldeploy.ops.upgrade import UpgradeError, check_release, deployed_versions, last_run_failed, target_versions
from omldeploy.state import ledger
from omldeploy.state.lock import TenantBusy, tenant_lock

DEFAULT_WAVES = "1,10%,rest"
STATE_DIR = ".omldeploy/rollouts"

#: upgrades one tenant: (tenant, reporter, release, backup) -> exit code; tests use their own
Upgrader = Callable[[Tenant, Reporter, "str | None", bool], int]


class RolloutError(Exception):
    """Bad request (waves, release, nothing to resume, another rollout unfinished): exit 2, nothing done."""


def parse_waves(spec: str, count: int) -> list[int]:
    """Wave sizes for `count` tenants from `1,10%,rest`: a number of tenants, a percentage of all of them
    (rounded up, at least 1) or `rest` (last only). Tenants beyond the spec without `rest` are not
    scheduled; waves left empty are dropped."""
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or len(parts) > 100:
        raise RolloutError(f"--waves {spec!r}: give 1 to 100 waves separated by commas, e.g. 1,10%,rest")
    sizes: list[int] = []
    left = count
    for i, part in enumerate(parts):
        if part == "rest":
            if i != len(parts) - 1:
                raise RolloutError(f"--waves {spec!r}: 'rest' can only be the last wave")
            n = left
        elif part.endswith("%") and part[:-1].isdigit() and 1 <= int(part[:-1]) <= 100:
            n = max(1, math.ceil(count * int(part[:-1]) / 100))
        elif part.isdigit() and 1 <= int(part) <= 100000:
            n = int(part)
        else:
            raise RolloutError(f"--waves {spec!r}: {part!r} is not a wave (allowed: a number of tenants such as "
                               "1, a percentage such as 10%, or rest as the last one)")
        n = min(n, left)
        if n:
            sizes.append(n)
        left -= n
    return sizes


@dataclass
class Entry:
    """One tenant of a rollout."""

    tenant: str
    wave: int  # 1-based; 0 for tenants outside the waves (already at the target)
    state: str  # pending, running, ok, failed, already, unscheduled
    changes: str = ""
    seconds: float | None = None
    detail: str = ""
    attempts: int = 0


@dataclass
class Rollout:
    id: str
    release: str | None  # None: the versions each inventory names
    pattern: str
    waves_spec: str
    created: str
    waves: list[list[str]]
    entries: dict[str, Entry]
    excluded: dict[str, str] = field(default_factory=dict)  # tenant -> why
    status: str = "planned"  # planned, running, halted, incomplete, done, abandoned
    runs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        entries = {k: Entry(**v) for k, v in data.pop("entries").items()}
        return cls(entries=entries, **data)

    def count(self, *states: str) -> int:
        return sum(1 for e in self.entries.values() if e.state in states)

    def todo(self) -> list[str]:
        """Tenants a run (or a resumed one) would upgrade, in wave order."""
        return [n for wave in self.waves for n in wave if self.entries[n].state in ("pending", "running", "failed")]


def _changes(current: dict[str, str] | None, target: dict[str, str]) -> str:
    if current is None:
        return "not deployed yet"
    # the web app first: it is the version people name a release by
    keys = sorted(target, key=lambda k: (k != "omnileads_version", k))
    diff = [f"{k} {current.get(k, '-')} -> {target[k]}" for k in keys if current.get(k) != target[k]]
    diff += [f"{k} {v} -> (removed)" for k, v in sorted(current.items()) if k not in target]
    if not diff:
        return "versions as deployed (the last run failed: re-run)"
    return ", ".join(diff[:2]) + (f", +{len(diff) - 2} more" if len(diff) > 2 else "")


def plan(root: Path, *, release: str | None, pattern: str, waves: str) -> Rollout:
    """Which tenants, in which waves, and what changes for each; reads only the controller's files."""
    if release is not None:
        try:
            check_release(release)
        except UpgradeError as exc:
            raise RolloutError(str(exc)) from None
    folders = tenant_folders(root, pattern)
    if not folders:
        what = f"matching '{pattern}' " if pattern != "*" else ""
        raise RolloutError(f"no tenant {what}in {root} (a tenant is a folder holding inventory.yml)")
    loaded: dict[str, Tenant] = {}
    excluded: dict[str, str] = {}
    for folder in tenant_folders(root, "*"):  # every tenant: overlaps with tenants outside the pattern count
        try:
            loaded[folder.name] = load_tenant(folder, folder.name)
        except InventoryError as exc:
            errors = sum(1 for p in exc.problems if p.severity == "error")
            excluded[folder.name] = f"inventory has {errors} error(s): omldeploy validate --tenant {folder.name}"
    names = [f.name for f in folders]
    excluded = {n: why for n, why in excluded.items() if n in names}
    entries: dict[str, Entry] = {}
    need: list[str] = []
    shared = overlaps_among(list(loaded.values()))
    for name in names:
        tenant = loaded.get(name)
        if tenant is None:
            continue
        bad = refused(tenant, shared[name])
        if bad:
            excluded[name] = (f"shares {bad[0].key} {bad[0].address} with tenant {bad[0].other}: "
                              f"omldeploy validate --tenant {name}")
            continue
        try:
            target = target_versions(tenant, release)
        except UpgradeError as exc:
            excluded[name] = str(exc)
            continue
        current = deployed_versions(tenant.folder)
        if current == target and not last_run_failed(tenant.folder):
            entries[name] = Entry(name, 0, "already", "at the target")
            continue
        entries[name] = Entry(name, 0, "pending", _changes(current, target))
        need.append(name)
    sizes = parse_waves(waves, len(need))
    wave_list: list[list[str]] = []
    start = 0
    for size in sizes:
        wave_list.append(need[start:start + size])
        start += size
    for i, wave in enumerate(wave_list, 1):
        for name in wave:
            entries[name].wave = i
    for name in need[start:]:
        entries[name].state = "unscheduled"
    return Rollout(id=time.strftime("%Y%m%d-%H%M%S", time.gmtime()), release=release, pattern=pattern,
                   waves_spec=waves, created=ledger.now(), waves=wave_list, entries=entries, excluded=excluded)


# ----------------------------------------------------------------------------- state on disk

def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def save(root: Path, rollout: Rollout) -> None:
    """Atomically (a reader never sees half a file), 0600: tenant names and versions, no secret."""
    folder = state_dir(root)
    path = folder / f"{rollout.id}.json"
    with writing(path, "the rollout state"):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{rollout.id}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rollout.as_dict(), fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def load_all(root: Path) -> list[Rollout]:
    """Every rollout recorded under `root`, oldest first; a damaged file is skipped (named by `unfinished`)."""
    out: list[Rollout] = []
    folder = state_dir(root)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(Rollout.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return out


def unfinished(root: Path) -> Rollout | None:
    """The newest rollout that neither finished nor was abandoned."""
    for rollout in reversed(load_all(root)):
        if rollout.status in ("running", "halted", "incomplete"):
            return rollout
    return None


def abandon(root: Path) -> Rollout:
    with tenant_lock(root, "fleet", "fleet upgrade --abandon"):
        rollout = unfinished(root)
        if rollout is None:
            raise RolloutError("no unfinished rollout to abandon")
        rollout.status = "abandoned"
        save(root, rollout)
        _record(root, rollout, 0.0, "abandoned")
        return rollout


# ----------------------------------------------------------------------------- running

@dataclass
class Event:
    """What the command prints as the rollout goes: a wave starts, a tenant ends."""

    kind: str  # wave, tenant
    wave: int
    waves: int
    names: list[str] = field(default_factory=list)
    entry: Entry | None = None


def real_upgrade(tenant: Tenant, reporter: Reporter, release: str | None, backup: bool) -> int:
    """The tenant's own upgrade. Overlapping hosts were refused by the plan, once for the whole fleet (per
    tenant it would load every other inventory again); the hosts' owner markers still stand guard."""
    from omldeploy.ops.upgrade import upgrade

    return upgrade(tenant, reporter, release=release, backup=backup)


def run(root: Path, rollout: Rollout, *, parallel: int = 1, max_failures: int = 0, backup: bool = True,
        upgrader: Upgrader | None = None, on_event: Callable[[Event], None] | None = None) -> int:
    """Run (or resume) `rollout`; 0 when every scheduled tenant ended upgraded, 1 otherwise."""
    upgrade_one = upgrader or real_upgrade
    emit = on_event or (lambda _e: None)
    with tenant_lock(root, "fleet", "fleet upgrade"):
        t0 = time.monotonic()
        started = ledger.now()
        rollout.status = "running"
        save(root, rollout)
        guard = threading.Lock()
        halt = threading.Event()
        failed: list[str] = []
        log = _RolloutLog(state_dir(root) / f"{rollout.id}.log")

        def one(name: str) -> None:
            entry = rollout.entries[name]
            if halt.is_set():
                return  # stays as it was (pending, or failed from an earlier run)
            with guard:
                entry.state, entry.detail = "running", ""
                entry.attempts += 1
                save(root, rollout)
            t = time.monotonic()
            code, detail = _upgrade_tenant(root / name, name, rollout.release, backup, upgrade_one, log)
            with guard:
                entry.seconds = round(time.monotonic() - t, 1)
                entry.state = "ok" if code == 0 else "failed"
                entry.detail = detail
                if code != 0:
                    failed.append(name)
                    if len(failed) > max_failures:
                        halt.set()
                save(root, rollout)
            emit(Event("tenant", entry.wave, len(rollout.waves), entry=entry))

        outcome = "done"
        for index, wave in enumerate(rollout.waves, 1):
            names = [n for n in wave if rollout.entries[n].state in ("pending", "running", "failed")]
            if not names:
                continue
            emit(Event("wave", index, len(rollout.waves), names=names))
            with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names)))) as pool:
                list(pool.map(one, names))
            if halt.is_set():
                outcome = "halted"
                break
        if outcome == "done" and rollout.count("failed", "pending", "running"):
            outcome = "incomplete"  # failures within the budget: resumable, they are retried
        rollout.status = outcome
        duration = time.monotonic() - t0
        rollout.runs.append({"started": started, "seconds": round(duration, 1), "outcome": outcome,
                             "failed": list(failed)})
        save(root, rollout)
        _record(root, rollout, duration, outcome)
        return 0 if outcome == "done" else 1


def _upgrade_tenant(folder: Path, name: str, release: str | None, backup: bool, upgrade_one: Upgrader,
                    log: _RolloutLog) -> tuple[int, str]:
    """Upgrade one tenant; (exit code, one line saying why it failed or how it ended). Whatever happens in
    one tenant, the rollout goes on to decide with the others: nothing here raises."""
    try:
        tenant = load_tenant(folder, name)
    except InventoryError as exc:
        errors = sum(1 for p in exc.problems if p.severity == "error")
        return 1, f"inventory has {errors} error(s) now: omldeploy validate --tenant {name}"
    red = redactor(tenant)
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        log.write(name, text)

    reporter = Reporter(say=say, warn=lambda text: say(f"warning: {red(text)}"), redact=red)
    try:
        code = upgrade_one(tenant, reporter, release, backup)
    except TenantBusy as exc:
        return 1, red(str(exc))
    except (UpgradeError, InventoryError) as exc:
        return 1, red(" ".join(str(exc).split()))
    except Exception as exc:  # a bug in one tenant's upgrade must not leave the rollout's state "running"
        log.write(name, f"internal error: {type(exc).__name__}: {exc}")
        return 1, red(f"internal error ({type(exc).__name__}): see {log.path}")
    if code == 0:
        return 0, ""
    return code, red(_why(lines))


def _why(lines: list[str]) -> str:
    """The lines an operator needs from a failed upgrade: the failure and what happened after it."""
    keys = ("FAILED", "rolled back", "refused", "failed")
    picked = [x.strip() for x in lines if any(k in x for k in keys)]
    text = " | ".join(picked[-3:]) if picked else (lines[-1].strip() if lines else "failed")
    return text if len(text) <= 600 else text[:597] + "..."


class _RolloutLog:
    """Every tenant's upgrade lines, prefixed with its name, already redacted by its reporter (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, tenant: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        data = "".join(f"{stamp} {tenant}: {line}\n" for line in text.splitlines() or [""])
        with self._lock, writing(self.path, "the rollout log"):
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data.encode("utf-8", "replace"))
            finally:
                os.close(fd)


def _record(root: Path, rollout: Rollout, duration: float, outcome: str) -> None:
    """One line per run in the fleet ledger. Tenant names, counts and the release: nothing secret; the
    failure details (already redacted per tenant) stay in the state file."""
    rel = rollout.release
    ledger.append(root, ledger.Record(
        action="fleet-upgrade", outcome=outcome, started=ledger.now(), duration=round(duration, 1), versions={},
        hosts=[], changed=rollout.count("ok"),
        extra={"id": rollout.id, "release": rel, "waves": [len(w) for w in rollout.waves],
               "ok": rollout.count("ok"), "already": rollout.count("already"),
               "failed": sorted(n for n, e in rollout.entries.items() if e.state == "failed"),
               "pending": rollout.count("pending", "running"), "excluded": sorted(rollout.excluded)}),
        redact=lambda text: text)
