"""Apply rendered bundles to hosts through ansible-core, driven by ansible-runner.

Python decides what must be true; Ansible only carries it over SSH. Per host there are two module
calls: `stage` on every host in parallel (files written, images pulled, nothing stopped), then
`activate` tier by tier (data → voice → app → haproxy) so what others depend on is up first.
A failure anywhere in `stage` stops the run before any component is restarted.

Secrets: the stage call carries file contents, so it runs with `no_log` and its report (which the
module builds without secret values) is surfaced by a following `debug` task; everything printed or
logged also goes through the tenant's redactor.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omldeploy.inventory.model import Host, Tenant
from omldeploy.render.bundle import Bundle, HostBundle

LIBRARY = Path(__file__).parent / "ansible" / "library"
MODULE_UTILS = Path(__file__).parent / "ansible" / "module_utils"
TIER_ORDER = ("data", "aio", "voice", "app", "haproxy")
#: HA: what a tier reaches through a VIP is activated before it. voice needs the PostgreSQL VIPs (data);
#: app needs Redis through the HAProxy VIP and Asterisk through the voice VIP. Each pair is activated
#: main first, then backup, so both members of a pair are never (re)started together.
HA_TIER_ORDER = ("data", "voice", "haproxy", "app")


@dataclass
class HostResult:
    host: str
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # step name -> module report
    error: str | None = None
    unreachable: bool = False
    failed_step: str | None = None
    answered: bool = False  # Ansible reported at least one task result (ok, failed, skipped, unreachable)
    walls: dict[str, float] = field(default_factory=dict)  # step name -> the module task's wall seconds
    #: step name -> (start, end) of the module task, epoch seconds on the controller's clock (the first
    #: start, the last end when a step ran more than once): how long something was down, e.g. a restore's
    #: outage from its stop step to its last activate
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def stage(self) -> dict[str, Any] | None:
        return self.reports.get("stage")

    @property
    def activate(self) -> dict[str, Any] | None:
        return self.reports.get("activate")

    @property
    def status(self) -> dict[str, Any] | None:
        return self.reports.get("status")


@dataclass(frozen=True)
class Step:
    """One module call on some hosts. Steps run in order; a failing `fatal` step stops the run.

    `args` maps host -> module arguments (written to 0600 files, read by a lookup on the controller).
    `secret` hides the call's arguments and raw result from Ansible's output and events (the module's
    `report` is surfaced by a following debug task, so it must not contain secrets)."""

    name: str
    module: str
    args: dict[str, dict[str, Any]]
    secret: bool = False
    fatal: bool = True
    #: ask again every `delay` seconds, at most `retries` times, until the module's report says `done`;
    #: each answer reaches `progress` as "waiting". Running out of retries is no failure when the last
    #: report says `waiting` (the caller decides what a deadline means)
    retries: int = 0
    delay: int = 0
    #: Jinja condition (per host) for the module task; a host where it is false skips the step
    when: str | None = None
    #: (prefix, key): run on a host only where an earlier step of the run whose name starts with prefix
    #: reported `key` true. Resolved to register names when the playbook is written, so the step can sit
    #: anywhere in a longer run (a restore puts its activates after stop/switch steps)
    when_reported: tuple[str, str] | None = None


@dataclass
class RunResult:
    ok: bool
    check: bool
    duration: float
    hosts: dict[str, HostResult] = field(default_factory=dict)
    aborted: str | None = None

    def then(self, later: RunResult) -> RunResult:
        """This run followed by `later` (e.g. stage, then activate), as one result."""
        hosts = {n: HostResult(n) for n in [*self.hosts, *[h for h in later.hosts if h not in self.hosts]]}
        for part in (self, later):
            for n, h in part.hosts.items():
                hosts[n].reports.update(h.reports)
                for step, wall in h.walls.items():
                    hosts[n].walls[step] = hosts[n].walls.get(step, 0.0) + wall
                if h.error or h.unreachable:
                    hosts[n].error, hosts[n].unreachable, hosts[n].failed_step = h.error, h.unreachable, h.failed_step
        return RunResult(ok=self.ok and later.ok, check=self.check, duration=self.duration + later.duration,
                         hosts=hosts, aborted=self.aborted or later.aborted)

    def changed_files(self) -> int:
        return sum(len((h.stage or {}).get("changed_files", [])) for h in self.hosts.values())

    def restarted(self) -> list[str]:
        out = []
        for h in self.hosts.values():
            act = h.activate or {}
            out += [f"{h.host}:{u}" for u in act.get("restarted", []) + act.get("started", [])]
        return out


Progress = Callable[[str, str, str, str], None]  # host, step, outcome, detail


def tiers(tenant: Tenant, first: Mapping[str, str] | None = None) -> list[list[str]]:
    """Groups of hosts activated together, in order. HA: one pair member at a time, main first unless
    `first` names the member of a tier's pair to take first (the passive side of a running cluster)."""
    out: list[list[str]] = []
    seen: set[str] = set()
    ha = tenant.layout.shape.value == "ha"
    for role in HA_TIER_ORDER if ha else TIER_ORDER:
        members = [h.name for h in tenant.hosts if role in h.roles and h.name not in seen]
        groups = [[m for m in members if (tenant.host(m).ha_role or "main") == r] for r in ("main", "backup")] \
            if ha else [members]
        if first and first.get(role) in members:
            groups.sort(key=lambda g: first[role] not in g)
        for group in groups:
            if group:
                out.append(group)
        seen.update(members)
    rest = [h.name for h in tenant.hosts if h.name not in seen]
    if rest:
        out.append(rest)
    return out


def _connection_vars(host: Host) -> dict[str, Any]:
    conn = {k: v for k, v in host.connection.items() if k.startswith("ansible_")}
    conn["ansible_host"] = host.address
    conn["ansible_port"] = host.port
    conn.pop("ansible_ssh_port", None)
    conn.setdefault("ansible_user", "root")
    conn.setdefault("ansible_python_interpreter", "/usr/bin/python3")
    # Trust on first use instead of the seed's host_key_checking=False; an inventory can set its own.
    conn.setdefault("ansible_ssh_common_args", "-o StrictHostKeyChecking=accept-new")
    return conn


class _Unsafe(str):
    """A string value of the runner inventory, written as `!unsafe` (see `inventory_yaml`)."""

    __slots__ = ()


class _UnsafeDumper(yaml.SafeDumper):
    """SafeDumper that writes `_Unsafe` strings with Ansible's `!unsafe` tag."""


def _unsafe_str(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", str(value), style="'")


_UnsafeDumper.add_representer(_Unsafe, _unsafe_str)


def inventory_yaml(inventory: dict[str, Any]) -> str:
    """The runner inventory, with every string value tagged `!unsafe`, so Ansible never templates it.

    Inventory values (`ansible_user`, `ansible_ssh_common_args`, ...) were already resolved by our own
    sandbox (inventory/templating.py). A value that still holds `{{ ... }}` after that, for instance out
    of a `{% raw %}` block, is text: if Ansible templated it again, unsandboxed, a `lookup('pipe', ...)`
    would run on the controller at install, --check and status. Keys (host names, variable names) are
    checked names and stay plain; the module arguments are read through a lookup, whose result Ansible
    does not template either (tests/unit/apply/test_ansible_inert.py runs both through ansible-playbook)."""

    def tag(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: tag(v) for k, v in node.items()}
        if isinstance(node, list):
            return [tag(v) for v in node]
        return _Unsafe(node) if isinstance(node, str) else node

    return yaml.dump(tag(inventory), Dumper=_UnsafeDumper, sort_keys=False)


def _stage_args(tenant: Tenant, hb: HostBundle) -> dict[str, Any]:
    return {
        "tenant": tenant.name,
        "phase": "stage",
        "unit_style": hb.unit_style,
        "timezone": tenant.settings.text("TZ"),
        "directories": [{"path": p, "mode": f"{m:04o}"} for p, m in hb.directories],
        "files": [
            {"path": f.path, "mode": f"{f.mode:04o}", "content": base64.b64encode(f.content).decode(),
             "only_if_missing": f.only_if_missing, "kind": f.kind, "secret": f.secret,
             **({} if f.owner is None else {"owner": f.owner})}
            for f in hb.files
        ],
        "units": unit_args(hb),
        "extra_images": sorted({i for u in hb.units for i in u.hook_images}),
        "partial": hb.partial,
        "calls": hb.calls,
        "force_restart": list(hb.force_restart),
    }


def unit_args(hb: HostBundle) -> list[dict[str, Any]]:
    return [
        {"name": u.name, "container": u.container, "image": u.image, "enabled": u.enabled,
         "start_order": u.start_order, "after": list(u.after), "health": u.health, "files": list(u.files),
         "pre_start": list(u.pre_start), "post_start": list(u.post_start)}
        for u in hb.units
    ]


def _activate_args(tenant: Tenant, hb: HostBundle, phase: str = "activate") -> dict[str, Any]:
    return {
        "tenant": tenant.name,
        "phase": phase,
        "unit_style": hb.unit_style,
        "units": unit_args(hb),
        "host_units": hb.host_units,
        "files_index": sorted(f.path for f in hb.files),
        "partial": hb.partial,
        "force_restart": list(hb.force_restart),
        "drain": hb.drain,
    }


def phase_steps(tenant: Tenant, bundle: Bundle, phases: list[str], check: bool = False,
                first: Mapping[str, str] | None = None) -> list[Step]:
    """stage (all hosts) → activate tier by tier → status, as Steps of the host module."""
    steps: list[Step] = []
    if "stage" in phases:
        steps.append(Step("stage", "omldeploy_host", {hb.host: _stage_args(tenant, hb) for hb in bundle.hosts},
                          secret=True))
    if "activate" in phases and not check:
        counted = {hb.host: hb for hb in bundle.hosts if hb.calls}
        if counted and "stage" in phases:
            # only where the stage found calls up on a voice path about to restart. An activate without
            # a stage (restore, HA rolling) restarts what its caller stopped or moved away on purpose
            steps.append(calls_step(tenant, counted, after=0))
        names = {hb.host for hb in bundle.hosts}
        tiered = [[m for m in members if m in names] for members in tiers(tenant, first)]
        tiered = [members for members in tiered if members]
        # several tiers: each activate leaves its crash-loop check to one `settle` step at the end, where
        # the early tiers' units have long been up (a 3 s wait per tier was 6 s of an AIT install)
        later = len(tiered) > 1
        for i, members in enumerate(tiered):
            steps.append(Step(f"activate-{i}", "omldeploy_host",
                              {m: {**_activate_args(tenant, bundle.host(m)), "settle_later": later}
                               for m in members}))
        if later:
            # only where an activate of this run left units to watch: a no-op run pays no round trip for it
            steps.append(Step("settle", "omldeploy_host",
                              {hb.host: {"tenant": tenant.name, "phase": "settle"} for hb in bundle.hosts},
                              when_reported=("activate", "settle_pending")))
    if "status" in phases:
        steps.append(Step("status", "omldeploy_host",
                          {hb.host: _activate_args(tenant, hb, "status") for hb in bundle.hosts}, fatal=False))
    return steps


#: how often the `calls` step asks Asterisk again while calls are up
CALLS_POLL_SECONDS = 3


def calls_step(tenant: Tenant, hosts: Mapping[str, HostBundle], after: int) -> Step:
    """Before any activate: on each voice host where a unit that drops calls will restart (a changed
    setting, a pending or forced restart), wait until Asterisk reports no channel, asking every few
    seconds up to the host's `voice_drain_timeout` (module_utils/omldeploy_calls.py). Hosts with nothing
    to restart answer at once. `after`: the index of the stage step in the same run, whose report says
    whether calls are up (`calls.waiting`): elsewhere the step is skipped, at no SSH cost."""
    timeout = max(int(hb.calls["timeout"]) for hb in hosts.values() if hb.calls)
    return Step("calls", "omldeploy_host",
                {h: {"tenant": tenant.name, "phase": "calls", "calls": hb.calls,
                     "force_restart": list(hb.force_restart)} for h, hb in hosts.items()},
                fatal=False, retries=max(1, -(-timeout // CALLS_POLL_SECONDS)), delay=CALLS_POLL_SECONDS,
                when=f"((omldeploy_r{after}.report | default({{}})).calls | default({{}})).waiting | default(false)")


def _playbook(steps: list[Step]) -> list[dict[str, Any]]:
    """One play per step. The module arguments are read from `<omldeploy_dir>/<slot>.<step>.json`, where
    the slot (`h0`, `h1`, ...) is a per-host variable: no file name derives from a host name.

    A secret step hides its result with `no_log`, which would also hide why a host is unreachable
    (connection refused, host key changed); a `ping` first surfaces that reason, visibly."""
    plays: list[dict[str, Any]] = []
    reached: set[str] = set()
    for i, step in enumerate(steps):
        reg = f"omldeploy_r{i}"
        args = "{{ lookup('file', omldeploy_dir + '/' + omldeploy_slot + '." + str(i) + ".json') | from_json }}"
        # a host an earlier step of this run already reached needs no ping (a restore's outage run has six
        # steps: each ping was a round trip while the web app was down)
        ping = step.secret and not set(step.args) <= reached
        reached |= set(step.args)
        reach = [{"name": f"{step.name} reach", "ansible.builtin.ping": {}}] if ping else []
        call: dict[str, Any] = {"name": step.name, step.module: args, "register": reg, "no_log": step.secret,
                                "ignore_errors": True}
        failed = f"{reg} is failed"
        if step.when:
            call["when"] = step.when
        if step.when_reported:
            prefix, key = step.when_reported
            call["when"] = " or ".join(
                f"((omldeploy_r{k} | default({{}})).report | default({{}})).{key} | default(false)"
                for k, earlier in enumerate(steps[:i]) if earlier.name.startswith(prefix)) or "false"
        if step.retries:
            call.update(retries=step.retries, delay=step.delay,
                        until=f"{reg}.report is not defined or ({reg}.report.done | default(true))")
            failed += f" and not ({reg}.report.waiting | default(false))"
        tasks = [
            *reach,
            call,
            {"name": f"{step.name} report", "ansible.builtin.debug": {"var": f"{reg}.report"}},
            {"name": f"{step.name} failed",
             "ansible.builtin.fail": {"msg": "{{ " + reg + ".msg | default('failed') }}"}, "when": failed},
        ]
        play: dict[str, Any] = {"name": step.name, "hosts": ",".join(step.args), "gather_facts": False,
                                "tasks": tasks}
        if step.fatal:
            play.update(any_errors_fatal=True, max_fail_percentage=0)
        plays.append(play)
    return plays


def run_phases(
    tenant: Tenant,
    bundle: Bundle,
    phases: list[str],
    *,
    check: bool = False,
    progress: Progress | None = None,
    stdout: Callable[[str], None] | None = None,
    first: Mapping[str, str] | None = None,
) -> RunResult:
    """Converge hosts to the bundle (or report status); see `phase_steps`."""
    return run_steps(tenant, phase_steps(tenant, bundle, phases, check, first), check=check, progress=progress,
                     stdout=stdout)


def run_steps(
    tenant: Tenant,
    steps: list[Step],
    *,
    check: bool = False,
    progress: Progress | None = None,
    stdout: Callable[[str], None] | None = None,
    fresh_connection: bool = False,
    timeout: int | None = None,
) -> RunResult:
    """Run module calls on the tenant's hosts through ansible-runner. Never raises for host-side
    failures: they are in the per-host results. `fresh_connection`: every host is reached over a new
    SSH connection (no shared master), e.g. to prove that a new firewall still lets the controller in.
    `timeout`: seconds after which the whole run is stopped (`aborted` says so); a fleet-wide read must
    not wait on one tenant's hung host."""
    import ansible_runner  # type: ignore[import-untyped,unused-ignore]

    t0 = time.monotonic()
    names = [h.name for h in tenant.hosts if any(h.name in s.args for s in steps)]
    result = RunResult(ok=False, check=check, duration=0.0, hosts={n: HostResult(n) for n in names})
    # private (0700) and removed in `finally`: the stage arguments hold every rendered file, secrets included
    workdir = Path(tempfile.mkdtemp(prefix=f"omldeploy-{tenant.name}-"))
    os.chmod(workdir, 0o700)
    try:
        argdir = workdir / "args"
        argdir.mkdir(mode=0o700)
        slots = {n: f"h{k}" for k, n in enumerate(names)}
        for i, step in enumerate(steps):
            for host, args in step.args.items():
                write_private_json(argdir / f"{slots[host]}.{i}.json", args)
        inventory = {"all": {"hosts": {n: {**_connection_vars(tenant.host(n)), "omldeploy_slot": slots[n]}
                                       for n in names},
                             "vars": {"omldeploy_dir": str(argdir)}}}
        (workdir / "inventory").mkdir()
        (workdir / "inventory" / "hosts.yml").write_text(inventory_yaml(inventory))
        (workdir / "project").mkdir()
        (workdir / "project" / "apply.yml").write_text(yaml.safe_dump(_playbook(steps), sort_keys=False))
        handler = _EventHandler(result, progress, stdout)
        runner = ansible_runner.run(
            private_data_dir=str(workdir),
            playbook="apply.yml",
            envvars=_ansible_env(workdir, fresh_connection),
            cmdline="--check --diff" if check else None,
            quiet=True,
            event_handler=handler,
            settings={"suppress_ansible_output": True},
            forks=max(5, len(names)),
            **({"timeout": timeout} if timeout else {}),
        )
        failed = any(h.error or h.unreachable for h in result.hosts.values())
        if getattr(runner, "status", None) == "timeout":
            result.aborted = f"stopped after {timeout} s (the run's time limit); hosts that had not answered: " \
                             + (", ".join(n for n, h in result.hosts.items() if not h.answered) or "none")
        elif runner.rc != 0 and not failed:
            tail = (runner.stdout.read() if runner.stdout else "")[-2000:]
            result.aborted = f"ansible-playbook exited {runner.rc}: {tail.strip()}"
        silent = flag_silent_hosts(result, progress)
        result.ok = runner.rc == 0 and not failed and not silent
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.duration = time.monotonic() - t0
    return result


def write_private_json(path: Path, data: Any) -> None:
    """A new 0600 file (never an existing one, never through a symlink) holding `data` as JSON."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)


def flag_silent_hosts(result: RunResult, progress: Progress | None = None) -> list[str]:
    """Mark every host of the run that produced no result at all as failed, and name them.

    A host Ansible never ran a task on (a name it expanded or split, an inventory it could not parse for
    that host) must not read as "nothing changed" or "all healthy". Skipped when the run already failed
    or aborted: a fatal failure stops the later plays before they reach some hosts, and that failure is
    what the operator must read."""
    if result.aborted or any(h.error or h.unreachable for h in result.hosts.values()):
        return []
    silent = [n for n, h in result.hosts.items() if not h.answered]
    for name in silent:
        hr = result.hosts[name]
        hr.failed_step = "run"
        hr.error = ("Ansible reported no result for this host (no ok, changed, failed or unreachable task): "
                    "nothing was checked or changed there")
        if progress:
            progress(name, "run", "failed", hr.error)
    return silent


def _ansible_env(workdir: Path, fresh_connection: bool = False) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_LIBRARY": str(LIBRARY),
        "ANSIBLE_MODULE_UTILS": str(MODULE_UTILS),
        "ANSIBLE_PIPELINING": "True",
        # ansible-runner turns host key checking off by default; keep it on (the per-host
        # ssh_common_args default to StrictHostKeyChecking=accept-new: trust on first use)
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=10",
        "ANSIBLE_SSH_RETRIES": "1",
        "ANSIBLE_TIMEOUT": "15",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
    }
    if fresh_connection:
        env["ANSIBLE_SSH_ARGS"] = "-C -o ControlMaster=no -o ControlPath=none -o ServerAliveInterval=10"
    if os.environ.get("OMLDEPLOY_MITOGEN") == "1":
        try:
            import ansible_mitogen  # type: ignore[import-not-found,unused-ignore]

            env["ANSIBLE_STRATEGY_PLUGINS"] = str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
            env["ANSIBLE_STRATEGY"] = "mitogen_linear"
        except ImportError:
            pass
    return env


class _EventHandler:
    """Turns ansible-runner events into per-host results and live progress lines."""

    def __init__(self, result: RunResult, progress: Progress | None, stdout: Callable[[str], None] | None) -> None:
        self.result = result
        self.progress = progress
        self.stdout = stdout

    def __call__(self, event: dict[str, Any]) -> bool:
        if self.stdout and event.get("stdout"):
            self.stdout(str(event["stdout"]))
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        host = data.get("host") or data.get("remote_addr")
        task = str(data.get("task", ""))
        res = data.get("res") or {}
        if host not in self.result.hosts:
            return True
        hr = self.result.hosts[host]
        step = task.split(" ")[0]
        label = step.split("-")[0]  # activate-1 -> activate
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            hr.answered = True
            if task == step and kind in ("runner_on_ok", "runner_on_failed") \
                    and isinstance(data.get("duration"), (int, float)):
                # the module task itself (not its reach/report/failed companions): SSH + Ansible + module
                hr.walls[step] = hr.walls.get(step, 0.0) + float(data["duration"])
                span = _span(data)
                if span is not None:
                    was = hr.spans.get(step)
                    hr.spans[step] = span if was is None else (min(was[0], span[0]), max(was[1], span[1]))
        if kind == "runner_on_start" and " " not in task and self.progress:
            self.progress(host, label, "start", "")
        elif kind == "runner_retry" and self.progress:
            report = res.get("report")
            if isinstance(report, dict) and report.get("waiting"):
                self.progress(host, task.removeprefix("TASK: ").split(" ")[0], "waiting",
                              f"{report.get('channels')} channel(s) up; {', '.join(report.get('restarting') or [])} "
                              f"restart(s) when they end (asked {res.get('attempts', '?')} time(s))")
        elif kind == "runner_on_unreachable":
            hr.unreachable = True
            hr.failed_step = label
            hr.error = str(res.get("msg", "unreachable")).strip()
            if self.progress:
                self.progress(host, label, "unreachable", hr.error)
        elif kind == "runner_on_ok" and task.endswith(" report"):
            report = next((v for k, v in res.items() if k.endswith(".report")), None)
            if isinstance(report, dict):
                hr.reports[label] = report
                if self.progress and not report.get("failed"):
                    self.progress(host, label, "ok", summarize(label, report))
        elif kind == "runner_on_failed" and (task.endswith(" failed") or task.endswith(" reach")):
            hr.failed_step = label
            hr.error = str(res.get("msg", "failed"))
            if self.progress:
                self.progress(host, label, "failed", hr.error)
        return True


def _span(data: dict[str, Any]) -> tuple[float, float] | None:
    """A task result's start and end (ansible-runner gives local ISO times) as epoch seconds."""
    try:
        start = datetime.datetime.fromisoformat(str(data["start"])).timestamp()
        end = datetime.datetime.fromisoformat(str(data["end"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    return start, end


def summarize(step: str, report: dict[str, Any]) -> str:
    if step == "stage":
        parts = [f"{len(report.get('changed_files', []))} file(s) changed"]
        if report.get("pulled"):
            parts.append(f"{len(report['pulled'])} image(s) pulled")
        if report.get("to_pull"):
            parts.append(f"{len(report['to_pull'])} image(s) to pull")
        if report.get("restart"):
            parts.append(f"to (re)start: {', '.join(report['restart'])}")
        if (report.get("calls") or {}).get("waiting"):
            parts.append(f"{report['calls'].get('channels')} channel(s) up on the voice path")
        parts.append(f"{report.get('style', '?')} units, podman {report.get('podman_version', '?')}")
        return "; ".join(parts)
    if step == "status":
        units = report.get("units", [])
        bad = [u["unit"] for u in units if not u.get("healthy") and u.get("enabled")]
        return f"{len(units)} unit(s), " + (f"unhealthy: {', '.join(bad)}" if bad else "all healthy")
    if step == "activate":
        started, restarted = report.get("started", []), report.get("restarted", [])
        if not started and not restarted and not report.get("stopped"):
            return "nothing to restart"
        parts = []
        if started:
            parts.append(f"started {', '.join(started)}")
        if restarted:
            parts.append(f"restarted {', '.join(restarted)}")
        if report.get("stopped"):
            parts.append(f"removed {', '.join(report['stopped'])}")
        return "; ".join(parts)
    if step == "calls":
        if not report.get("needed"):
            return "no unit on the voice path restarts"
        units = ", ".join(report.get("restarting") or [])
        if report.get("channels") is None:
            return f"cannot count the calls ({report.get('error', '?')}); {units} restart(s) without waiting"
        if report.get("channels"):
            return f"{report['channels']} channel(s) still up at the deadline; {units} restart(s) anyway"
        return f"no call up; {units} restart(s) now"
    if step == "recycle":
        return (f"{len(report.get('containers', []))} exited container(s), "
                f"{len(report.get('images', []))} old image(s), {int(report.get('bytes', 0)) / 1e6:.0f} MB")
    return str(report.get("summary", "done"))
