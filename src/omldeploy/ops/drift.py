"""Drift: where a tenant's hosts differ from what its inventory renders, found without changing anything.

One Ansible run per tenant, in check mode: the host module's `stage` compares every rendered file
(content and mode), the images and the placed units with the host and writes nothing, and `status`
reads each unit's state and running image. A hand-edited file, a stopped unit, a container running
another image, a unit left over from an old placement or a restart still owed by a failed run are
named, host by host. Nothing is stopped, started, pulled or written on any host.

The parsing (`findings`) is separate from the run so that `fleet status` can put the same steps in
its own single run per tenant (with the backup catalog) and read the drift from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from omldeploy.apply.engine import RunResult, Step, phase_steps, run_steps
from omldeploy.inventory.model import Tenant
from omldeploy.render.build import render_tenant
from omldeploy.render.bundle import Bundle, UnitPlan

OWNER_FILE = "/etc/omnileads/omldeploy-owner"  # the host module's tenant marker (issue 12 H2)


@dataclass(frozen=True)
class Finding:
    """One difference on one host. `kind`: host (not reached, refused), file, directory, image, unit,
    restart (owed by an earlier run), timer."""

    host: str
    kind: str
    what: str
    detail: str

    def text(self) -> str:
        return f"{self.host}: {self.kind} {self.what}: {self.detail}"


@dataclass
class Drift:
    tenant: str
    findings: list[Finding] = field(default_factory=list)
    #: host -> path -> diff (secret values masked by the host module; the caller redacts before printing)
    diffs: dict[str, dict[str, str]] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    @property
    def reached(self) -> bool:
        return not any(f.kind == "host" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "drifted": self.drifted, "hosts": self.hosts,
                "findings": [asdict(f) for f in self.findings], "diffs": self.diffs,
                "seconds": round(self.seconds, 2)}


def steps(tenant: Tenant, bundle: Bundle) -> list[Step]:
    """The read-only steps (run them with check=True): stage in check mode, then status."""
    return phase_steps(tenant, bundle, ["stage", "status"], check=True)


def drift(tenant: Tenant, *, timeout: int | None = None, stdout: Any = None) -> Drift:
    bundle = render_tenant(tenant)
    result = run_steps(tenant, steps(tenant, bundle), check=True, timeout=timeout, stdout=stdout)
    return findings(tenant, bundle, result)


def findings(tenant: Tenant, bundle: Bundle, result: RunResult) -> Drift:
    out = Drift(tenant.name, hosts=[hb.host for hb in bundle.hosts], seconds=result.duration)
    for hb in bundle.hosts:
        h = result.hosts.get(hb.host)
        if h is None or h.unreachable or h.error or h.stage is None:
            why = "no result" if h is None else (h.error or "no stage report")
            if result.aborted and (h is None or not h.answered):
                why = result.aborted
            kind = "unreachable" if h is not None and h.unreachable else "not checked"
            out.findings.append(Finding(hb.host, "host", kind, _first_line(why)))
            continue
        out.findings += _stage_findings(hb.host, h.stage, hb.units)
        out.findings += _status_findings(hb.host, h.status)
        diffs = h.stage.get("diffs") or {}
        if diffs:
            out.diffs[hb.host] = {str(k): str(v) for k, v in sorted(diffs.items())}
    return out


def _stage_findings(host: str, stage: dict[str, Any], units: tuple[UnitPlan, ...] | list[UnitPlan]
                    ) -> list[Finding]:
    out: list[Finding] = []
    changed = [str(p) for p in stage.get("changed_files") or []]
    for path in changed:
        if path == OWNER_FILE:
            out.append(Finding(host, "host", "owner marker", "missing: this tenant was never installed here"))
        elif path.endswith("/"):
            out.append(Finding(host, "directory", path, "missing"))
        elif path.endswith(" (removed)"):
            out.append(Finding(host, "file", path.removesuffix(" (removed)"), "left over from the other unit style"))
        elif path == "/etc/localtime":
            out.append(Finding(host, "file", path, "not the inventory's time zone"))
        else:
            has_diff = path in (stage.get("diffs") or {})
            out.append(Finding(host, "file", path, "differs from the rendered one" if has_diff
                               else "missing or another mode"))
    for image in stage.get("to_pull") or []:
        out.append(Finding(host, "image", str(image), "not on the host"))
    for unit in stage.get("removed_units") or []:
        out.append(Finding(host, "unit", str(unit), "still on the host but no longer placed here"))
    by_file = {u.name for u in units if set(u.files) & set(changed)}
    grew = True
    while grew:  # what restarts with a changed unit (same-host dependents) is explained by the file too
        grew = False
        for u in units:
            if u.name not in by_file and by_file & set(u.after):
                by_file.add(u.name)
                grew = True
    for unit in stage.get("restart") or []:
        if unit not in by_file:
            out.append(Finding(host, "restart", str(unit),
                               "owed: its settings changed but it has not restarted since (the next install does)"))
    return out


def _status_findings(host: str, status: dict[str, Any] | None) -> list[Finding]:
    if status is None:
        return [Finding(host, "host", "status", "no status report")]
    out: list[Finding] = []
    for u in status.get("units") or []:
        name = str(u.get("unit"))
        running = u.get("state") == "active"
        if u.get("enabled") and not running:
            out.append(Finding(host, "unit", name, f"{u.get('state')} ({u.get('sub') or '-'}), should run"))
        elif u.get("enabled") and not u.get("healthy"):
            out.append(Finding(host, "unit", name, f"running but unhealthy: {u.get('detail')}"))
        image, want = str(u.get("image") or ""), str(u.get("want_image") or "")
        if running and image and want and _image(image) != _image(want):
            out.append(Finding(host, "unit", name, f"runs {image}, the inventory says {want}"))
    for t in status.get("timers") or []:
        if t.get("state") != "active":
            out.append(Finding(host, "timer", str(t.get("timer")), f"{t.get('state')}, should be armed"))
    return out


def _image(ref: str) -> str:
    """Podman names Docker Hub images `docker.io/library/x`; the inventory may say `x`."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
