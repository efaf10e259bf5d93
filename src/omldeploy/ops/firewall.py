"""The firewall phase of a converging run (`firewall: nftables`), after every unit is up.

Two Ansible runs, on purpose: `apply` loads each host's rendered ruleset with a rollback timer armed
(omldeploy_firewall), then `confirm` reaches every changed host over a NEW SSH connection. A ruleset
that shuts the controller out makes that connection fail, the confirmation never arrives, and the
host restores its previous table by itself after `firewall_rollback_seconds`: the run reports the
host as failed and says so. Hosts whose ruleset did not change are not confirmed again.
"""

from __future__ import annotations

from collections.abc import Callable

from omldeploy.apply.engine import Progress, RunResult, Step, run_steps
from omldeploy.inventory.model import Tenant
from omldeploy.render.bundle import Bundle

MODULE = "omldeploy_firewall"


def apply_step(tenant: Tenant, bundle: Bundle, seconds: int | None = None) -> Step | None:
    """The `firewall` step for every host with a rendered ruleset (None: `firewall: none`)."""
    rollback = seconds if seconds is not None else tenant.settings.num("firewall_rollback_seconds")
    args = {hb.host: {"tenant": tenant.name, "phase": "apply", "ruleset": hb.firewall, "rollback_seconds": rollback}
            for hb in bundle.hosts if hb.firewall is not None}
    return Step("firewall", MODULE, args) if args else None


def confirm_step(tenant: Tenant, applied: RunResult) -> Step | None:
    """`confirm` for the hosts whose apply loaded a new ruleset (their report carries its token)."""
    args = {name: {"tenant": tenant.name, "phase": "confirm", "token": str(h.reports["firewall"]["token"])}
            for name, h in applied.hosts.items() if (h.reports.get("firewall") or {}).get("token")}
    return Step("confirm", MODULE, args) if args else None


def converge_firewall(tenant: Tenant, bundle: Bundle, *, check: bool = False, progress: Progress | None = None,
                      stdout: Callable[[str], None] | None = None, confirm: bool = True) -> RunResult | None:
    """Apply (and confirm) the tenant's host firewalls; None when the tenant has none.

    `confirm=False` leaves the confirmation out, so the hosts restore their previous table after the
    rollback delay: what happens when the controller is shut out (used by the e2e test)."""
    step = apply_step(tenant, bundle)
    if step is None:
        return None
    applied = run_steps(tenant, [step], check=check, progress=progress, stdout=stdout)
    if check or not applied.ok or not confirm:
        return applied
    conf = confirm_step(tenant, applied)
    if conf is None:
        return applied
    confirmed = run_steps(tenant, [conf], progress=progress, stdout=stdout, fresh_connection=True)
    seconds = tenant.settings.num("firewall_rollback_seconds")
    for h in confirmed.hosts.values():
        if h.unreachable:
            h.error = (f"the controller cannot open a new SSH connection under the new firewall ({h.error}); "
                       f"the host restores its previous firewall within {seconds}s by itself")
    return applied.then(confirmed)
