"""What `backup`, `backups …` and `restore` share: a session that runs the host module on the tenant's hosts.

It sits below ops/backup.py and ops/restore.py (both import it, neither imports the other for it), so
the two operations do not depend on each other.

Every step's host report may carry `s3_retries`: the transient bucket failures the host module retried
("S3 PUT … part 3: 500 InternalError, retry 1/4 in 0.4 s"). They are printed — live from the progress
file during long transfers, the rest after the step — so a slow, flaky bucket is visible, not silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from omldeploy.apply.engine import RunResult, Step, run_steps
from omldeploy.backup import catalog
from omldeploy.inventory.model import Tenant
from omldeploy.ops.backup_progress import Bar, Poller
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.render.backup_target import Target, TargetError, resolve
from omldeploy.render.build import render_tenant
from omldeploy.state.runlog import RunLog

MODULE = "omldeploy_backup"
EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


class OpFailed(Exception):
    """A step failed on a host; the message is for the operator (secrets are redacted on output).
    `step`: the step that failed, when a run held several (the steps after it did not run)."""

    def __init__(self, message: str, code: int = EXIT_FAILED, step: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.step = step


@dataclass
class Session:
    tenant: Tenant
    target: Target
    reporter: Reporter

    def step(self, name: str, calls: dict[str, dict[str, Any]], progress_host: str | None = None
             ) -> dict[str, dict[str, Any]]:
        """Run one module call per host (in parallel); raise OpFailed naming the host on any failure."""
        return self.reports(name, self.run([self.call(name, calls)], progress_host))

    def call(self, name: str, calls: dict[str, dict[str, Any]]) -> Step:
        """A step of the backup module, each host's arguments with the bucket and its (hidden) secret key."""
        public = {k: v for k, v in self.target.s3.items() if k != "secret_key"}
        args = {h: {"tenant": self.tenant.name, "s3": public, "s3_secret_key": self.target.s3["secret_key"], **a}
                for h, a in calls.items()}
        return Step(name, MODULE, args, secret=True)

    def run(self, steps: list[Step], progress_host: str | None = None) -> RunResult:
        """Several steps in ONE Ansible run (one SSH connection per host, not one per step): they run in
        order and a failing step ends the run. The caller reads each step's reports with `reports`."""
        with self._progress(progress_host) as bar:
            result = run_steps(self.tenant, steps, stdout=self.reporter.ansible)
        for st in steps:
            self._retries(st.name, result, progress_host, bar.shown if bar is not None else 0)
        return result

    def reports(self, name: str, result: RunResult) -> dict[str, dict[str, Any]]:
        """Step `name`'s report per host; OpFailed (naming the host and the step that failed) on any failure
        in the run."""
        errors, step = [], None
        for h in result.hosts.values():
            if h.unreachable:
                errors.append(f"host {h.host} is unreachable over SSH: {h.error}")
            elif h.error:
                errors.append(f"{h.host}: {h.error}")
            step = step or h.failed_step
        if result.aborted and not errors:
            errors.append(result.aborted)
        if errors:
            raise OpFailed("; ".join(errors), step=step)
        return {h: r.reports[name] for h, r in result.hosts.items() if name in r.reports}

    def _retries(self, name: str, result: RunResult, progress_host: str | None, shown: int) -> None:
        for h, r in result.hosts.items():
            notes = (r.reports.get(name) or {}).get("s3_retries") or []
            for text in notes[shown if h == progress_host else 0:]:
                self.reporter.line(f"  {h}: {text}")

    @contextlib.contextmanager
    def _progress(self, host: str | None) -> Iterator[Bar | None]:
        if host is None:
            yield None
            return
        bar = Bar(host, self.reporter.line)
        with Poller(self.tenant.host(host), self.tenant.name, bar):
            try:
                yield bar
            finally:
                bar.finish()


def open_session(tenant: Tenant, reporter: Reporter) -> Session:
    reporter.redact = redactor(tenant)
    try:
        target = resolve(tenant, render_tenant(tenant))
    except TargetError as exc:
        raise OpFailed(str(exc), EXIT_INPUT) from None
    return Session(tenant, target, reporter)


@contextlib.contextmanager
def logged(tenant: Tenant, reporter: Reporter, action: str) -> Iterator[None]:
    """A run log for this operation, unless an enclosing one (upgrade -> backup) already writes one."""
    if reporter.log is not None:
        yield
        return
    reporter.log = RunLog(tenant.folder, action, reporter.redact)
    try:
        yield
    finally:
        reporter.line(f"log: {reporter.log.path}")
        reporter.log.close()
        reporter.log = None


def fetch_catalog(sess: Session) -> tuple[list[catalog.Entry], dict[str, Any], int]:
    t = sess.target
    rep = sess.step("catalog", {t.db_host: {"op": "catalog", "media": True}})[t.db_host]
    return catalog.build(rep.get("objects", []), rep.get("documents", {})), rep.get("documents", {}), \
        int(rep.get("media_root_objects", 0))
