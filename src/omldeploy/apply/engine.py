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
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omldeploy.inventory.model import Host, Tenant
from omldeploy.render.bundle import Bundle, HostBundle

LIBRARY = Path(__file__).parent / "ansible" / "library"
TIER_ORDER = ("data", "aio", "voice", "app", "haproxy")


@dataclass
class HostResult:
    host: str
    stage: dict[str, Any] | None = None
    activate: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    error: str | None = None
    unreachable: bool = False
    failed_step: str | None = None


@dataclass
class RunResult:
    ok: bool
    check: bool
    duration: float
    hosts: dict[str, HostResult] = field(default_factory=dict)
    aborted: str | None = None

    def changed_files(self) -> int:
        return sum(len((h.stage or {}).get("changed_files", [])) for h in self.hosts.values())

    def restarted(self) -> list[str]:
        out = []
        for h in self.hosts.values():
            act = h.activate or {}
            out += [f"{h.host}:{u}" for u in act.get("restarted", []) + act.get("started", [])]
        return out


Progress = Callable[[str, str, str, str], None]  # host, step, outcome, detail


def tiers(tenant: Tenant) -> list[list[str]]:
    out: list[list[str]] = []
    seen: set[str] = set()
    for role in TIER_ORDER:
        members = [h.name for h in tenant.hosts if role in h.roles and h.name not in seen]
        if members:
            out.append(members)
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


def _stage_args(tenant: Tenant, hb: HostBundle) -> dict[str, Any]:
    return {
        "tenant": tenant.name,
        "phase": "stage",
        "unit_style": hb.unit_style,
        "timezone": tenant.settings.text("TZ"),
        "directories": [{"path": p, "mode": f"{m:04o}"} for p, m in hb.directories],
        "files": [
            {"path": f.path, "mode": f"{f.mode:04o}", "content": base64.b64encode(f.content).decode(),
             "only_if_missing": f.only_if_missing, "kind": f.kind, "secret": f.secret}
            for f in hb.files
        ],
        "units": _unit_args(hb),
        "extra_images": sorted({i for u in hb.units for i in u.hook_images}),
        "partial": hb.partial,
    }


def _unit_args(hb: HostBundle) -> list[dict[str, Any]]:
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
        "units": _unit_args(hb),
        "host_units": hb.host_units,
        "files_index": sorted(f.path for f in hb.files),
        "partial": hb.partial,
    }


def _playbook(tenant: Tenant, phases: list[str], check: bool) -> list[dict[str, Any]]:
    def call(phase: str, secret: bool) -> list[dict[str, Any]]:
        reg = f"omldeploy_{phase}"
        args = "{{ lookup('file', omldeploy_dir + '/' + inventory_hostname + '." + phase + ".json') | from_json }}"
        return [
            {"name": phase, "omldeploy_host": args, "register": reg, "no_log": secret, "ignore_errors": True},
            {"name": f"{phase} report", "ansible.builtin.debug": {"var": f"{reg}.report"}},
            {"name": f"{phase} failed", "ansible.builtin.fail": {"msg": "{{ " + reg + ".msg | default('failed') }}"},
             "when": f"{reg} is failed"},
        ]

    plays: list[dict[str, Any]] = []
    if "stage" in phases:
        plays.append({"name": "stage", "hosts": "all", "gather_facts": False, "any_errors_fatal": True,
                      "max_fail_percentage": 0, "tasks": call("stage", secret=True)})
    if "activate" in phases and not check:
        for i, members in enumerate(tiers(tenant)):
            plays.append({"name": f"activate tier {i}", "hosts": ",".join(members), "gather_facts": False,
                          "any_errors_fatal": True, "max_fail_percentage": 0,
                          "tasks": call("activate", secret=False)})
    if "status" in phases:
        plays.append({"name": "status", "hosts": "all", "gather_facts": False, "tasks": call("status", False)})
    return plays


def run_phases(
    tenant: Tenant,
    bundle: Bundle,
    phases: list[str],
    *,
    check: bool = False,
    progress: Progress | None = None,
    stdout: Callable[[str], None] | None = None,
    limit_hosts: list[str] | None = None,
) -> RunResult:
    """Run the given phases; returns per-host reports. Never raises for host-side failures."""
    import ansible_runner  # type: ignore[import-untyped,unused-ignore]

    t0 = time.monotonic()
    hosts = [hb for hb in bundle.hosts if limit_hosts is None or hb.host in limit_hosts]
    result = RunResult(ok=False, check=check, duration=0.0,
                       hosts={hb.host: HostResult(hb.host) for hb in hosts})
    workdir = Path(tempfile.mkdtemp(prefix=f"omldeploy-{tenant.name}-"))
    os.chmod(workdir, 0o700)
    try:
        argdir = workdir / "args"
        argdir.mkdir(mode=0o700)
        for hb in hosts:
            for phase in phases:
                args = _stage_args(tenant, hb) if phase == "stage" else _activate_args(tenant, hb, phase)
                path = argdir / f"{hb.host}.{phase}.json"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(args, fh)
        inventory = {"all": {"hosts": {hb.host: _connection_vars(tenant.host(hb.host)) for hb in hosts},
                             "vars": {"omldeploy_dir": str(argdir)}}}
        (workdir / "inventory").mkdir()
        (workdir / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        (workdir / "project").mkdir()
        (workdir / "project" / "apply.yml").write_text(yaml.safe_dump(_playbook(tenant, phases, check),
                                                                      sort_keys=False))
        handler = _EventHandler(result, progress, stdout)
        envvars = _ansible_env(workdir)
        runner = ansible_runner.run(
            private_data_dir=str(workdir),
            playbook="apply.yml",
            envvars=envvars,
            cmdline="--check --diff" if check else None,
            quiet=True,
            event_handler=handler,
            settings={"suppress_ansible_output": True},
            forks=max(5, len(hosts)),
        )
        result.ok = runner.rc == 0 and not any(h.error or h.unreachable for h in result.hosts.values())
        if runner.rc != 0 and not any(h.error or h.unreachable for h in result.hosts.values()):
            tail = (runner.stdout.read() if runner.stdout else "")[-2000:]
            result.aborted = f"ansible-playbook exited {runner.rc}: {tail.strip()}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.duration = time.monotonic() - t0
    return result


def _ansible_env(workdir: Path) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_LIBRARY": str(LIBRARY),
        "ANSIBLE_PIPELINING": "True",
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
        if kind == "runner_on_start" and task in ("stage", "activate", "status") and self.progress:
            self.progress(host, task, "start", "")
        elif kind == "runner_on_unreachable":
            hr.unreachable = True
            hr.failed_step = step
            hr.error = str(res.get("msg", "unreachable")).strip()
            if self.progress:
                self.progress(host, step, "unreachable", hr.error)
        elif kind == "runner_on_ok" and task.endswith(" report"):
            report = res.get(f"omldeploy_{step}.report")
            if isinstance(report, dict):
                setattr(hr, step, report)
                if self.progress and not report.get("failed"):
                    self.progress(host, step, "ok", summarize(step, report))
        elif kind == "runner_on_failed" and task.endswith(" failed"):
            hr.failed_step = step
            hr.error = str(res.get("msg", "failed"))
            if self.progress:
                self.progress(host, step, "failed", hr.error)
        return True


def summarize(step: str, report: dict[str, Any]) -> str:
    if step == "stage":
        parts = [f"{len(report.get('changed_files', []))} file(s) changed"]
        if report.get("pulled"):
            parts.append(f"{len(report['pulled'])} image(s) pulled")
        if report.get("to_pull"):
            parts.append(f"{len(report['to_pull'])} image(s) to pull")
        if report.get("restart"):
            parts.append(f"to (re)start: {', '.join(report['restart'])}")
        parts.append(f"{report.get('style', '?')} units, podman {report.get('podman_version', '?')}")
        return "; ".join(parts)
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
    units = report.get("units", [])
    bad = [u["unit"] for u in units if not u.get("healthy") and u.get("enabled")]
    return f"{len(units)} unit(s), " + (f"unhealthy: {', '.join(bad)}" if bad else "all healthy")
