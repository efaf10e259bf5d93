"""`omldeploy fleet status|drift`: every tenant under instances/ at a glance, for people and scripts.

Per tenant, from the controller: the inventory (valid? layout, release, app version), the ledger (last
operation and its outcome, last restore proof), the certificates kept in its folder. From its hosts,
in ONE check-mode Ansible run per tenant: drift and unit health (ops/drift.py) and, when the tenant has
a bucket, the backup catalog (age of the newest backup). Tenants are read concurrently with a bound
(`parallel`) and each run has a time limit, so one hung host costs one tenant's timeout, not the fleet's.

A tenant "needs attention" for a reason that a person must act on; each reason is a short sentence in
`attention`. An operation running now (the tenant lock is held) is reported, not flagged, and its hosts
are not read: a half-applied install is not drift.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omldeploy.apply.engine import RunResult, Step, run_steps
from omldeploy.backup import catalog
from omldeploy.inventory import load_tenant
from omldeploy.inventory.model import Tenant
from omldeploy.inventory.problems import InventoryError
from omldeploy.ops import drift as drift_op
from omldeploy.ops.converge import redactor
from omldeploy.render.backup_target import TargetError, resolve
from omldeploy.render.build import render_tenant
from omldeploy.state import ledger
from omldeploy.state.lock import holder

#: ledger actions that prove a tenant's backups restore (a drill never touches the live database)
PROOF_ACTIONS = ("restore", "drill-restore")

#: runs a tenant's read-only steps; replaced by simulated hosts in the benchmark
Runner = Callable[[Tenant, list[Step], int], RunResult]


def real_runner(tenant: Tenant, steps: list[Step], timeout: int) -> RunResult:
    return run_steps(tenant, steps, check=True, timeout=timeout)


@dataclass(frozen=True)
class Options:
    pattern: str = "*"
    parallel: int = 8
    timeout: int = 120
    hosts: bool = True  # False: only what the controller knows (no SSH)
    backups: bool = True  # read the bucket's catalog (a host lists it)
    backup_max_hours: float = 48.0
    proof_max_days: float = 30.0
    runner: Runner | None = None  # None: the real one (SSH); the benchmark simulates hosts


@dataclass
class Row:
    tenant: str
    valid: bool = True
    layout: str | None = None
    release: str | None = None
    omlapp: str | None = None
    hosts: int | None = None
    health: str = "not checked"  # healthy, UNHEALTHY, unreachable, timeout, busy, invalid, not checked
    drift: int | None = None  # findings other than health, None when hosts were not read
    findings: list[str] = field(default_factory=list)
    last_op: dict[str, Any] | None = None
    backup_age_hours: float | None = None
    backup_id: str | None = None
    backups_read: bool = False  # the bucket's catalog was read (the ledger misses scheduled backups)
    proof_age_days: float | None = None
    cert_days_left: int | None = None
    busy: str | None = None
    attention: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # per host, each unit as the host reported it: {unit, state, sub, healthy, image, detail} (the dashboard)
    units: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tenant_folders(root: Path, pattern: str) -> list[Path]:
    """Folders under `root` holding an inventory.yml whose name matches the glob, sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if fnmatch.fnmatchcase(p.name, pattern) and (p / "inventory.yml").is_file())


def survey(root: Path, opts: Options, done: Callable[[Row, int, int], None] | None = None) -> list[Row]:
    """One Row per tenant (in name order), read `opts.parallel` at a time; `done` hears of each as it ends."""
    folders = tenant_folders(root, opts.pattern)
    rows: dict[str, Row] = {}
    with ThreadPoolExecutor(max_workers=max(1, opts.parallel)) as pool:
        futures = {pool.submit(inspect_tenant, f, opts): f for f in folders}
        for n, fut in enumerate(as_completed(futures), 1):
            folder = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # one broken tenant must not hide the others
                row = Row(folder.name, health="error", attention=[f"could not be read: {_one_line(str(exc))}"])
            rows[folder.name] = row
            if done is not None:
                done(row, n, len(folders))
    return [rows[f.name] for f in folders]


def inspect_tenant(folder: Path, opts: Options, now: float | None = None) -> Row:
    t0 = time.monotonic()
    now = time.time() if now is None else now
    row = Row(folder.name)
    _from_ledger(row, folder, now)
    try:
        tenant = load_tenant(folder, folder.name)
    except InventoryError as exc:
        errors = sum(1 for p in exc.problems if p.severity == "error")
        row.valid, row.health = False, "invalid"
        row.attention.append(f"inventory has {errors} error(s): omldeploy validate --tenant {folder.name}")
        row.seconds = time.monotonic() - t0
        return row
    row.layout, row.hosts = tenant.layout.name, len(tenant.hosts)
    row.release = tenant.settings.text("omnileads_release") or None
    row.omlapp = tenant.versions.get("omnileads_version")
    busy = holder(folder)
    if busy is not None:
        row.busy = f"{busy.get('action', '?')} by {busy.get('user', '?')} since {busy.get('since', '?')}"
        row.health = "busy"
    elif opts.hosts:
        _from_hosts(row, tenant, opts, now)
    _certificates(row, tenant)  # after the render, which makes a new tenant's certificates
    _judge(row, opts)
    red = redactor(tenant)  # host errors and health details quote what the hosts said
    row.findings = [red(x) for x in row.findings]
    row.attention = [red(x) for x in row.attention]
    for units in row.units.values():
        for u in units:
            u["detail"] = red(u["detail"])
    row.seconds = round(time.monotonic() - t0, 2)
    return row


def _from_ledger(row: Row, folder: Path, now: float) -> None:
    records = ledger.read(folder, damaged=[])
    if records:
        last = records[-1]
        row.last_op = {"action": last.action, "outcome": last.outcome, "started": last.started,
                       "duration": last.duration}
    proofs = [r for r in records if r.action in PROOF_ACTIONS and r.outcome == "ok"]
    if proofs:
        row.proof_age_days = _age(proofs[-1].started, now, 86400.0)
    backups = [r for r in records if r.action == "backup" and r.outcome == "ok"]
    if backups:  # the bucket's catalog, when read, is the better source (scheduled backups are not here)
        row.backup_age_hours = _age(backups[-1].started, now, 3600.0)


def _age(started: str, now: float, unit: float) -> float | None:
    try:
        epoch = dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None
    return round(max(0.0, now - epoch) / unit, 1)


def _certificates(row: Row, tenant: Tenant) -> None:
    from omldeploy.ops.certs import describe

    try:
        found = describe(tenant)
    except (OSError, ValueError) as exc:
        row.attention.append(f"certificate unreadable: {_one_line(str(exc))}")
        return
    if found:
        row.cert_days_left = min(c.days_left for c in found)


def _from_hosts(row: Row, tenant: Tenant, opts: Options, now: float) -> None:
    bundle = render_tenant(tenant)
    steps = drift_op.steps(tenant, bundle)
    target = None
    if opts.backups:
        try:
            target = resolve(tenant, bundle)
        except TargetError as exc:
            row.attention.append(f"backups: {_one_line(str(exc))}")
    if target is not None:
        public = {k: v for k, v in target.s3.items() if k != "secret_key"}
        steps.append(Step("catalog", "omldeploy_backup", {target.db_host: {
            "op": "catalog", "tenant": tenant.name, "s3": public, "s3_secret_key": target.s3["secret_key"]}},
            secret=True, fatal=False))
    result = (opts.runner or real_runner)(tenant, steps, opts.timeout)
    found = drift_op.findings(tenant, bundle, result)
    unreached = [f for f in found.findings if f.kind == "host" and f.what in ("unreachable", "not checked")]
    unhealthy = [f for f in found.findings if f.kind == "unit" and ("should run" in f.detail
                                                                     or "unhealthy" in f.detail)]
    if result.aborted and "time limit" in result.aborted:
        row.health = "timeout"
    elif unreached:
        row.health = "unreachable"
    elif unhealthy:
        row.health = "UNHEALTHY"
    else:
        row.health = "healthy"
    for host, h in result.hosts.items():
        reported = (h.status or {}).get("units") or []
        row.units[host] = [{"unit": str(u.get("unit")), "state": u.get("state"), "sub": u.get("sub"),
                            "healthy": bool(u.get("healthy")), "image": u.get("image"),
                            "detail": _one_line(str(u.get("detail") or ""))[:200]} for u in reported[:100]]
    rest = [f for f in found.findings if f not in unreached and f not in unhealthy]
    row.drift = None if unreached else len(rest)
    row.findings = [f.text() for f in found.findings][:50]
    if target is not None and not unreached:
        _from_catalog(row, result, target.db_host, now)


def _from_catalog(row: Row, result: RunResult, host: str, now: float) -> None:
    h = result.hosts.get(host)
    rep = None if h is None else h.reports.get("catalog")
    if h is not None and h.error and rep is None:
        row.attention.append(f"backups: the bucket could not be listed ({_one_line(h.error)})")
        return
    if rep is None:
        return
    row.backups_read = True
    entries = [e for e in catalog.build(rep.get("objects", []), rep.get("documents", {}))
               if e.kind != "incomplete" and e.created_epoch]
    row.backup_age_hours, row.backup_id = None, None
    if entries:
        newest = max(entries, key=lambda e: e.created_epoch or 0)
        row.backup_age_hours = round(max(0.0, now - float(newest.created_epoch or 0)) / 3600.0, 1)
        row.backup_id = newest.id


def _judge(row: Row, opts: Options) -> None:
    """The reasons a person must act on this tenant, in the order they matter."""
    if row.health in ("unreachable", "timeout", "UNHEALTHY"):
        first = next((f for f in row.findings if ": host " in f or ": unit " in f), "")
        row.attention.append(f"{row.health}" + (f": {first}" if first else ""))
    if row.drift:
        row.attention.append(f"drift: {row.drift} difference(s) with the inventory (omldeploy drift --tenant "
                             f"{row.tenant})")
    if row.last_op and row.last_op["outcome"] == "failed":
        row.attention.append(f"last operation failed: {row.last_op['action']} at {row.last_op['started']}")
    if row.cert_days_left is not None and row.cert_days_left < 0:
        row.attention.append("a certificate has expired")
    elif row.cert_days_left is not None and row.cert_days_left < 30:
        row.attention.append(f"a certificate expires in {row.cert_days_left} day(s)")
    if row.backups_read:
        if row.backup_age_hours is None:
            row.attention.append("no backup found")
        elif row.backup_age_hours > opts.backup_max_hours:
            row.attention.append(f"last backup is {row.backup_age_hours:.0f} h old (limit "
                                 f"{opts.backup_max_hours:.0f} h)")
    if row.valid:
        if row.proof_age_days is None:
            row.attention.append("backups never proven by a restore or drill (omldeploy fleet drill-restore)")
        elif row.proof_age_days > opts.proof_max_days:
            row.attention.append(f"last restore proof is {row.proof_age_days:.0f} days old (limit "
                                 f"{opts.proof_max_days:.0f})")


def summary(rows: list[Row]) -> dict[str, Any]:
    count: dict[str, int] = {}
    for r in rows:
        count[r.health] = count.get(r.health, 0) + 1
    return {"tenants": len(rows), "attention": sum(1 for r in rows if r.attention), "health": count,
            "drifted": sum(1 for r in rows if r.drift), "seconds": round(sum(r.seconds for r in rows), 1)}


def _one_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[0][:300] if lines else text

