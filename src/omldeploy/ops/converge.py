"""install, per-component actions and status: render, lock, apply, report, record.

`install` and the per-component actions are the same operation: make the hosts match the rendered
bundle (all components, or one group). Re-running with no change restarts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omldeploy.apply.engine import HostResult, RunResult, run_phases, tiers
from omldeploy.apply.select import select, select_using
from omldeploy.apply.timing import breakdown, describe
from omldeploy.inventory.model import Tenant
from omldeploy.ops.firewall import converge_firewall
from omldeploy.render import material
from omldeploy.render.build import CERT_DIR, render_tenant
from omldeploy.render.bundle import Bundle
from omldeploy.render.taint import is_real_secret
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from omldeploy.state.runlog import Redactor, RunLog
from omldeploy.tables import format_table


@dataclass
class Reporter:
    """Where an operation writes: live lines for the operator, the same (redacted) into the run log."""

    say: Callable[[str], None]
    warn: Callable[[str], None]
    verbose: bool = False
    log: RunLog | None = None
    redact: Redactor = field(default_factory=lambda: Redactor([]))
    t0: float = field(default_factory=time.monotonic)

    def line(self, text: str) -> None:
        text = self.redact(text)
        self.say(text)
        if self.log:
            self.log.write(text)

    def progress(self, host: str, step: str, outcome: str, detail: str) -> None:
        if outcome == "start":
            if self.log:
                self.log.write(f"[{time.monotonic() - self.t0:6.1f}s] {host} {step} started")
            return
        first = detail.splitlines()[0] if detail else ""
        self.line(f"[{time.monotonic() - self.t0:6.1f}s] {host:<18} {step:<9} {outcome:<11} {first}")

    def ansible(self, text: str) -> None:
        text = self.redact(text)
        if self.log:
            self.log.write(text)
        if self.verbose:
            self.say(text)


def redactor(tenant: Tenant) -> Redactor:
    """Every secret of the tenant: the inventory's secret keys (whatever their length or how common the
    word), the generated ones, and SSH/become passwords given as Ansible connection variables."""
    from omldeploy.inventory.schema import SECRET_KEYS

    values = [str(tenant.settings[k]) for k in SECRET_KEYS
              if tenant.settings.has(k) and is_real_secret(tenant.settings[k])]
    values += [str(v) for h in tenant.hosts for k, v in h.connection.items()
               if "pass" in k and isinstance(v, str) and v]
    values += material.tenant_secrets(tenant.folder).values()
    return Redactor(values)


WHOLE_TENANT = ("install", "upgrade", "rollback", "update")


def bundle_for(tenant: Tenant, action: str) -> Bundle:
    bundle = render_tenant(tenant)
    if action in WHOLE_TENANT:
        return bundle
    if action == CERTS_ACTION:
        return select_using(bundle, CERT_DIR)
    return select(bundle, action)


CERTS_ACTION = "certs"  # `omldeploy certs renew`: push the certificates, restart only what uses them


def renew_if_due(tenant: Tenant, reporter: Reporter, *, check: bool) -> None:
    """`install` re-issues the selfsigned server certificate when fewer than RENEW_WITHIN_DAYS remain
    (issue 12 M4: an 825-day certificate used to expire silently); the run then pushes it and restarts
    only what uses it, like any changed file."""
    if tenant.settings.opt("certs") != "selfsigned":
        return
    days = material.RENEW_WITHIN_DAYS
    if check:
        left = material.server_days_left(tenant.folder)
        if left is not None and left < days:
            reporter.line(f"the server certificate expires in {left} day(s): install would renew it")
        return
    renewed = material.renew_server(tenant.folder, days)
    if renewed is not None:
        old, new = renewed
        reporter.line(f"the server certificate expired or expires within {days} days ({old:%Y-%m-%d}): renewed "
                      f"from the tenant CA, valid until {new:%Y-%m-%d}")


def converge(tenant: Tenant, action: str, reporter: Reporter, *, check: bool = False,
             extra: dict[str, Any] | None = None, restart: bool = False, stage_only: bool = False,
             switchover: bool = False, force: bool = False) -> int:
    result = converge_result(tenant, action, reporter, check=check, extra=extra, restart=restart,
                             stage_only=stage_only, switchover=switchover, force=force)
    if result is None:
        return 2
    return 0 if result.ok else 1


def converge_result(tenant: Tenant, action: str, reporter: Reporter, *, check: bool = False,
                    extra: dict[str, Any] | None = None, restart: bool = False,
                    stage_only: bool = False, switchover: bool = False, force: bool = False) -> RunResult | None:
    """Make the hosts match the rendered tenant; None when nothing of `action` runs in this layout.

    restart: also restart every selected unit, changed or not (the seed's restart_* actions): per host in
    one systemd transaction, then each unit's health check in start order.
    stage_only: write files and pull images but restart nothing; the restarts they call for stay
    pending on the host until the next converging run (the seed's update).
    switchover: HA, when the PostgreSQL primary or the Redis master must restart: hand its role to the
    (already restarted) standby or replica first, instead of restarting it in place.
    force: units on the voice path restart without waiting for the calls to end (voice_drain_timeout).
    """
    if action == "install":
        with tenant_lock(tenant.folder, tenant.name, action):  # a busy tenant: refused before any change
            renew_if_due(tenant, reporter, check=check)
    bundle = bundle_for(tenant, action)
    if not bundle.hosts:
        reporter.warn(f"no host of tenant {tenant.name} runs anything for '{action}' in layout {tenant.layout.name}")
        return None
    if restart:
        for hb in bundle.hosts:
            hb.force_restart = [u.name for u in hb.units]
    unwaited = [hb.host for hb in bundle.hosts if force and hb.calls]
    for hb in bundle.hosts:
        if hb.host in unwaited:
            hb.calls = None
    reporter.redact = redactor(tenant)
    started = ledger.now()
    with tenant_lock(tenant.folder, tenant.name, action):
        reporter.log = RunLog(tenant.folder, action + ("-check" if check else ""), reporter.redact)
        try:
            units = sum(len(h.units) for h in bundle.hosts)
            mode = " (check: nothing will be changed)" if check else ""
            reporter.line(f"{action} tenant {tenant.name}: {tenant.layout.describe()}, {len(bundle.hosts)} host(s), "
                          f"{units} unit(s){mode}")
            phases = ["stage"] if stage_only else ["stage", "activate"]
            if tenant.layout.shape.value == "ha" and not check and not stage_only:
                result = _ha_rolling(tenant, bundle, reporter, restart, switchover)
            else:
                result = run_phases(tenant, bundle, phases, check=check, progress=reporter.progress,
                                    stdout=reporter.ansible)
            if result.ok and action in WHOLE_TENANT and not stage_only:
                # the host firewall last: every unit is up, so a rule that breaks a service is the
                # firewall's fault, and a controller shut out still leaves a running tenant
                walled = converge_firewall(tenant, bundle, check=check, progress=reporter.progress,
                                           stdout=reporter.ansible)
                if walled is not None:
                    result = result.then(walled)
            if unwaited and not check:
                reporter.line("--force: units on the voice path restart without waiting for calls to end "
                              f"({', '.join(unwaited)})")
            _calls_outcome(result, reporter)
            report(tenant, bundle, result, reporter)
            if restart and check:
                for hb in bundle.hosts:
                    reporter.line(f"{hb.host}: would restart in this order: "
                                  + ", ".join(u.name for u in sorted(hb.units, key=lambda u: u.start_order)))
            if stage_only and result.ok and not check:
                waiting = {h: (r.stage or {}).get("restart", []) for h, r in result.hosts.items()}
                for h, names in waiting.items():
                    if names:
                        reporter.line(f"{h}: waiting for a restart: {', '.join(names)}")
                if any(waiting.values()):
                    reporter.line("nothing was restarted; `omldeploy install` restarts exactly these units")
            timings = breakdown(result)
            for text in describe(timings):
                # every run's log has it; `-v` prints it; the ledger keeps it for `history`
                if reporter.verbose:
                    reporter.line(text)
                elif reporter.log:
                    reporter.log.write(text)
            outcome = "check" if check else ("ok" if result.ok else "failed")
            ledger.append(tenant.folder, ledger.Record(
                action=action, outcome=outcome, started=started, duration=round(result.duration, 1),
                versions=dict(tenant.versions), hosts=[h.host for h in bundle.hosts],
                changed=result.changed_files(), restarted=result.restarted(),
                detail=_failure_text(result) if not result.ok else "",
                extra={"images": {h.host: h.images for h in bundle.hosts}, "timings": timings, **(extra or {})},
            ), redact=reporter.redact)
            reporter.line(f"log: {reporter.log.path}")
            return result
        finally:
            reporter.log.close()
            reporter.log = None


def _calls_outcome(result: RunResult, reporter: Reporter) -> None:
    """Say what the wait for calls (engine.calls_step) ended in where it did not simply find none."""
    for host, hr in result.hosts.items():
        # the calls step's last answer, or the stage's own count where the step had nothing to wait for
        c = hr.reports.get("calls") or (hr.stage or {}).get("calls") or {}
        units = ", ".join(c.get("restarting") or [])
        if c.get("waiting"):
            reporter.warn(f"{host}: {c.get('channels')} channel(s) still up when voice_drain_timeout ran out: "
                          f"{units} restarted anyway, dropping them")
        elif c.get("needed") and c.get("channels") is None:
            reporter.warn(f"{host}: the calls could not be counted ({c.get('error')}); {units} restarted "
                          "without waiting")


def _ha_rolling(tenant: Tenant, bundle: Bundle, reporter: Reporter, restart: bool,
                switchover: bool = False) -> RunResult:
    """HA: stage everywhere, then activate one pair member at a time, the passive side first (the
    PostgreSQL standby, the Redis replica, the node not holding the VIP): the active side keeps serving
    while the other restarts, and is restarted last. Which side is passive is read from the cluster only
    when something will restart; a first install (nothing to read) goes main first. With `switchover`
    the primary / master whose unit must restart first hands its role to the restarted passive side."""
    staged = run_phases(tenant, bundle, ["stage"], progress=reporter.progress, stdout=reporter.ansible)
    if not staged.ok:
        return staged
    first: dict[str, str] | None = None
    pending = {n: set((h.stage or {}).get("restart") or []) for n, h in staged.hosts.items()}
    if restart:
        for hb in bundle.hosts:
            pending[hb.host] |= set(hb.force_restart)
    if any(pending.values()):
        from omldeploy.ops.ha_facts import passive_first

        first = passive_first(tenant)
        if first:
            reporter.line("rolling order, passive side first: "
                          + ", ".join(f"{role} {host}" for role, host in first.items()))
    switches = _switches(tenant, first, pending) if first else {}
    if switchover and not switches:
        reporter.line("--switchover: no primary or master has to restart in this run; nothing to switch")
    if not switches:
        return staged.then(run_phases(tenant, bundle, ["activate"], progress=reporter.progress,
                                      stdout=reporter.ansible, first=first))
    if not switchover:
        # restarted in place: the standby's repmgrd must not promote it meanwhile (a new image can take
        # longer to start than repmgrd waits); Redis restarts in place and Sentinel decides as always
        switches = {h: u for h, u in switches.items() if u == "postgresql"}
    return _ha_segments(tenant, bundle, reporter, staged, first or {}, switches, switchover)


def _ha_segments(tenant: Tenant, bundle: Bundle, reporter: Reporter, staged: RunResult, first: dict[str, str],
                 switches: dict[str, str], switchover: bool) -> RunResult:
    """Activation in segments, with a step between the passive member of a pair and its active peer:
    a switchover (the passive one takes the role), or a hold of the standby's repmgrd while the primary
    restarts in place (released right after, also when the activation fails)."""
    from omldeploy.ops import ha
    from omldeploy.placement import place
    from omldeploy.render.bundle import Bundle as B

    names = {hb.host for hb in bundle.hosts}
    groups = [g for g in tiers(tenant, first) if any(n in names for n in g)]
    peer_of = {p: _peer(tenant, p, unit) for p, unit in switches.items()}
    run = ha.Run(tenant, reporter, place(tenant))
    result, segment, held = staged, [], None
    try:
        for group in groups:
            segment += [n for n in group if n in names]
            passive = next((h for h in switches if h in group), None)
            releases = held is not None and peer_of[held] in group
            if passive is None and not releases and group is not groups[-1]:
                continue
            part = B(bundle.tenant, bundle.layout, [hb for hb in bundle.hosts if hb.host in segment])
            result = result.then(run_phases(tenant, part, ["activate"], progress=reporter.progress,
                                            stdout=reporter.ansible, first=first))
            segment = []
            if not result.ok:
                break
            if releases and held is not None:
                run.call(tenant.host(held), "release", "units", start=["repmgr"])
                held = None
            if passive is None:
                continue
            new = tenant.host(passive)
            if switchover:
                (ha.pgsql_switchover if switches[passive] == "postgresql" else ha.redis_switchover)(run, new)
            else:
                run.say(f"{peer_of[passive]} restarts as the primary: {passive}'s repmgrd is held meanwhile")
                run.call(new, "hold", "units", stop=["repmgr"])
                held = passive
    except (ha.Refused, ha.Failed) as exc:
        result.ok, result.aborted = False, f"{exc}"
    finally:
        if held is not None:  # the activation failed while the primary restarted: automatic failover again
            try:
                run.call(tenant.host(held), "release", "units", start=["repmgr"])
            except ha.Failed as exc:
                reporter.warn(f"could not start repmgrd again on {held}: {exc}; run `systemctl start repmgr` there")
    return result


#: the pair a switchover or a hold is about: unit -> the host role of its pair
PAIRED = {"postgresql": "data", "redis": "app"}


def _peer(tenant: Tenant, host: str, unit: str) -> str:
    """The other member of `host`'s pair for `unit`."""
    return next(h.name for h in tenant.hosts if PAIRED[unit] in h.roles and h.ha_role and h.name != host)


def _switches(tenant: Tenant, first: dict[str, str], pending: dict[str, set[str]]) -> dict[str, str]:
    """passive host -> the unit whose active peer must restart: a switchover follows that host's turn."""
    out: dict[str, str] = {}
    for unit, role in PAIRED.items():
        passive = first.get(role)
        if not passive or (unit == "redis" and tenant.layout.two_node):
            continue  # two-node: a standalone Redis per node, nothing to switch
        if unit in pending.get(_peer(tenant, passive, unit), set()):
            out[passive] = unit
    return out


def report(tenant: Tenant, bundle: Bundle, result: RunResult, reporter: Reporter) -> None:
    reporter.line("")
    rows: list[tuple[str, ...]] = []
    for hb in bundle.hosts:
        h = result.hosts[hb.host]
        stage = h.stage or {}
        act = h.activate or {}
        state = "ok" if not (h.error or h.unreachable) else ("UNREACHABLE" if h.unreachable else "FAILED")
        if result.check and not h.error:
            state = "check"
        rows.append((hb.host, str(len(stage.get("changed_files", []))),
                     str(len(stage.get("pulled", [])) or len(stage.get("to_pull", []))),
                     ", ".join(act.get("started", [])) or "-", ", ".join(act.get("restarted", [])) or "-", state))
    for line in format_table(("host", "files changed", "images pulled", "started", "restarted", "result"), rows,
                             rule=False):
        reporter.line(line)
    walls = {name: h.reports["firewall"] for name, h in result.hosts.items()
             if h.reports.get("firewall") and not h.reports["firewall"].get("failed")}
    for name, fw in walls.items():
        confirmed = (result.hosts[name].reports.get("confirm") or {}).get("summary")
        reporter.line(f"{name}: {confirmed or fw.get('summary', 'firewall')}")
    restarted = result.restarted()
    if result.check:
        _print_diffs(result, reporter)
    elif result.ok:
        if not result.changed_files() and not restarted and not any(fw.get("changed") for fw in walls.values()):
            reporter.line(f"nothing changed, nothing restarted ({result.duration:.1f}s)")
        else:
            reporter.line(f"done in {result.duration:.1f}s: {result.changed_files()} file(s) changed, "
                          f"{len(restarted)} unit(s) started or restarted")
    if not result.ok:
        reporter.line(_failure_text(result))


def _failure_text(result: RunResult) -> str:
    lines = []
    for h in result.hosts.values():
        if h.unreachable:
            lines.append(f"FAILED: host {h.host} is unreachable over SSH during {h.failed_step}: {h.error}\n"
                         f"  check that it is up and that ansible_host/port/key are right, then re-run; "
                         f"{_safety(h)}")
        elif h.error:
            lines.append(f"FAILED: host {h.host}, step {h.failed_step}: {h.error}")
            act = h.activate or h.reports.get("settle") or {}
            if act.get("journal"):
                lines.append(f"  last journal lines of {act.get('failed_unit')}.service:")
                lines += [f"    {x}" for x in str(act["journal"]).splitlines()[-15:]]
            lines.append(f"  fix the cause and re-run: {_safety(h)}")
    if result.aborted:
        lines.append(f"FAILED: {result.aborted}")
    return "\n".join(lines) or "FAILED"


def _safety(h: HostResult) -> str:
    if h.failed_step == "stage":
        return "the run stopped before restarting anything on any host."
    return "units already restarted stay on the new settings; pending restarts are remembered and retried."


def _print_diffs(result: RunResult, reporter: Reporter) -> None:
    for h in result.hosts.values():
        stage = h.stage or {}
        if stage.get("to_pull"):
            reporter.line(f"{h.host}: would pull {', '.join(stage['to_pull'])}")
        if stage.get("restart"):
            reporter.line(f"{h.host}: would (re)start {', '.join(stage['restart'])}")
        for path, diff in sorted((stage.get("diffs") or {}).items()):
            reporter.line(f"--- {h.host}:{path}")
            for line in str(diff).splitlines():
                reporter.line(f"    {line}")


def wait_until_healthy(tenant: Tenant, timeout: float = 300.0) -> float:
    """Poll `status` until every enabled unit of every host is healthy; seconds waited (TimeoutError)."""
    bundle = render_tenant(tenant)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        result = run_phases(tenant, bundle, ["status"])
        units = [u for h in result.hosts.values() for u in (h.status or {}).get("units", [])]
        if result.ok and units and all(u["healthy"] for u in units if u["enabled"]):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError(f"tenant {tenant.name} not healthy after {timeout:.0f}s")


def status(tenant: Tenant, reporter: Reporter) -> tuple[int, dict[str, Any]]:
    bundle = render_tenant(tenant)
    reporter.redact = redactor(tenant)
    result = run_phases(tenant, bundle, ["status"])
    data: dict[str, Any] = {"tenant": tenant.name, "hosts": {}}
    healthy = result.ok
    for name, h in result.hosts.items():
        if h.unreachable or h.error:
            data["hosts"][name] = {"error": h.error, "unreachable": h.unreachable}
            healthy = False
            continue
        report = h.status or {}
        units = report.get("units", [])
        expected = len(bundle.host(name).units) if name in {hb.host for hb in bundle.hosts} else 0
        if expected and not units:
            # e.g. a host Ansible never reached under this name: "all healthy" with no units would be a lie
            data["hosts"][name] = {"error": f"no unit reported, {expected} expected on this host",
                                   "unreachable": False}
            healthy = False
            continue
        data["hosts"][name] = {"units": units}
        if report.get("timers"):
            data["hosts"][name]["timers"] = report["timers"]
        if report.get("prometheus"):
            # shown beside unit health, not folded into it: right after a start a target is down until
            # the next scrape (10 s), and a host that is down already makes the tenant unhealthy
            data["hosts"][name]["prometheus"] = report["prometheus"]
        for u in units:
            if u["enabled"] and not u["healthy"]:
                healthy = False
    data["healthy"] = healthy
    return (0 if healthy else 1), data
