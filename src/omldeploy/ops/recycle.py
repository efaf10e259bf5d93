"""`recycle`: free the disk space old image versions take on a tenant's hosts.

The seed ran `podman container prune -f` and `podman image prune -f -a` on the app host, which also
removes images of units that are stopped (an HA standby, a rollback target) and of anything else on the
host. Here each host keeps every image its placed units and hooks use and everything outside this
tenant's image repositories; what goes is exited containers and unused older tags of those
repositories, plus dangling layers. A later rollback pulls its images again.
"""

from __future__ import annotations

from omldeploy.apply.engine import Step, run_steps, unit_args
from omldeploy.inventory.model import Tenant
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.render.build import render_tenant
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from omldeploy.state.runlog import RunLog
from omldeploy.tables import format_table


def recycle(tenant: Tenant, reporter: Reporter, *, check: bool = False) -> int:
    bundle = render_tenant(tenant)
    reporter.redact = redactor(tenant)
    started = ledger.now()
    args = {hb.host: {"tenant": tenant.name, "phase": "recycle", "units": unit_args(hb),
                      "extra_images": sorted({i for u in hb.units for i in u.hook_images})}
            for hb in bundle.hosts}
    with tenant_lock(tenant.folder, tenant.name, "recycle"):
        reporter.log = RunLog(tenant.folder, "recycle" + ("-check" if check else ""), reporter.redact)
        try:
            mode = " (check: nothing will be removed)" if check else ""
            reporter.line(f"recycle tenant {tenant.name}: {len(bundle.hosts)} host(s){mode}")
            result = run_steps(tenant, [Step("recycle", "omldeploy_host", args, fatal=False)], check=check,
                               progress=reporter.progress, stdout=reporter.ansible)
            rows: list[tuple[str, ...]] = []
            freed = 0
            for name, h in result.hosts.items():
                rep = h.reports.get("recycle") or {}
                if h.error or h.unreachable:
                    rows.append((name, "-", "-", "-", "UNREACHABLE" if h.unreachable else f"FAILED: {h.error}"))
                    continue
                freed += int(rep.get("bytes", 0))
                rows.append((name, str(len(rep.get("containers", []))), str(len(rep.get("images", []))),
                             f"{int(rep.get('bytes', 0)) / 1e6:.0f} MB", "check" if check else "ok"))
                verb = "would remove" if check else "removed"
                for image in rep.get("images", []):
                    reporter.line(f"{name}: {verb} image {image}")
                for kept in rep.get("kept", []):
                    reporter.line(f"{name}: kept (in use) {kept}")
            reporter.line("")
            for line in format_table(("host", "containers", "images", "space", "result"), rows, rule=False):
                reporter.line(line)
            reporter.line(f"{'would free' if check else 'freed'} about {freed / 1e6:.0f} MB "
                          f"({result.duration:.1f}s); images of the deployed versions were kept")
            ledger.append(tenant.folder, ledger.Record(
                action="recycle", outcome="check" if check else ("ok" if result.ok else "failed"),
                started=started, duration=round(result.duration, 1), versions=dict(tenant.versions),
                hosts=list(result.hosts), extra={"bytes": freed}), redact=reporter.redact)
            reporter.line(f"log: {reporter.log.path}")
            return 0 if result.ok else 1
        finally:
            reporter.log.close()
            reporter.log = None
