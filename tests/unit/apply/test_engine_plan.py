"""What the apply engine sends to hosts, checked without hosts."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from omldeploy.apply.engine import Step, _playbook, phase_steps, tiers
from omldeploy.apply.select import select
from omldeploy.render.build import render_tenant
from tests.hostmodules import load, module_utils
from tests.unit.conftest import MakeTenant

MODULE = Path(__file__).resolve().parents[3] / "src/omldeploy/apply/ansible/library/omldeploy_host.py"
UNITS = MODULE.parents[1] / "module_utils" / "omldeploy_units.py"


def units_module() -> ModuleType:
    """The module_utils file, importable as Ansible ships it (`ansible.module_utils.omldeploy_units`)."""
    return load("ansible.module_utils.omldeploy_units", UNITS, register=True)


def safefs_module() -> ModuleType:
    """module_utils/omldeploy_safefs.py, importable as Ansible ships it."""
    module_utils("omldeploy_safefs")
    return sys.modules["ansible.module_utils.omldeploy_safefs"]


def host_module() -> ModuleType:
    units_module()
    safefs_module()
    module_utils("omldeploy_drain", "omldeploy_timing", "omldeploy_calls", "omldeploy_destroy", "omldeploy_promtargets")
    return load("omldeploy_host", MODULE, register=True)


def test_tiers_start_what_others_depend_on(make_tenant: MakeTenant) -> None:
    assert tiers(make_tenant("ait")) == [["omnileads_data"], ["omnileads_voice"], ["omnileads_app"]]
    # HA: what a tier reaches through a VIP first (HAProxy carries Redis for app), one pair member at a time
    assert tiers(make_tenant("ha")) == [["sql_1"], ["sql_2"], ["voice_1"], ["voice_2"], ["haproxy_1"],
                                        ["haproxy_2"], ["app_1"], ["app_2"]]
    # a running cluster: the passive member of each pair first (standby, VIP not held, Redis replica)
    assert tiers(make_tenant("ha"), {"data": "sql_2", "voice": "voice_2", "app": "app_2"}) == [
        ["sql_2"], ["sql_1"], ["voice_2"], ["voice_1"], ["haproxy_1"], ["haproxy_2"], ["app_2"], ["app_1"]]


def test_a_stage_run_then_an_activate_run_read_as_one() -> None:
    from omldeploy.apply.engine import HostResult, RunResult

    staged = RunResult(ok=True, check=False, duration=2.0, hosts={"a": HostResult("a", {"stage": {"x": 1}})})
    failed = HostResult("a", {"activate-0": {}}, error="boom", failed_step="activate")
    both = staged.then(RunResult(ok=False, check=False, duration=3.0, hosts={"a": failed}))
    assert not both.ok and both.duration == 5.0 and set(both.hosts["a"].reports) == {"stage", "activate-0"}
    assert both.hosts["a"].error == "boom" and both.hosts["a"].failed_step == "activate"


def test_stage_carries_files_and_is_hidden_from_ansible_output(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={"postgres_password": "stage-secret-123"})
    bundle = render_tenant(tenant)
    steps = phase_steps(tenant, bundle, ["stage", "activate"])
    assert [s.name for s in steps] == ["stage", "calls", "activate-0"]
    stage = steps[0]
    assert stage.secret and not steps[2].secret
    files = {f["path"]: f for f in stage.args["omnileads_aio"]["files"]}
    assert b"stage-secret-123" in base64.b64decode(files["/etc/default/django.env"]["content"])
    assert files["/etc/default/django.env"]["mode"] == "0600"
    assert "stage-secret-123" not in json.dumps(steps[2].args)  # activate args carry no secrets
    play = _playbook(steps)
    # a visible ping first: an unreachable host's reason (refused, host key changed) is not hidden by no_log
    assert play[0]["tasks"][0] == {"name": "stage reach", "ansible.builtin.ping": {}}
    assert play[0]["tasks"][1]["no_log"] is True and play[0]["any_errors_fatal"] is True
    assert play[0]["tasks"][2]["ansible.builtin.debug"] == {"var": "omldeploy_r0.report"}
    assert "omldeploy_slot" in play[0]["tasks"][1]["omldeploy_host"]  # no file name made of a host name
    assert play[2]["tasks"][0]["name"] == "activate-0"  # nothing secret there: no extra round-trip


def test_voice_hosts_wait_for_their_calls_before_any_activate(make_tenant: MakeTenant) -> None:
    """Issue 14, item 6: one `calls` step before the first activate, on the voice host only, asking
    every few seconds up to voice_drain_timeout; a deadline is no failure; 0 turns it off."""
    tenant = make_tenant("ait", vars={"voice_drain_timeout": 30, "ami_password": "ami-Secret-8812"})
    steps = phase_steps(tenant, render_tenant(tenant), ["stage", "activate"])
    assert [s.name for s in steps] == ["stage", "calls", "activate-0", "activate-1", "activate-2", "settle"]
    calls = steps[1]
    assert sorted(calls.args) == ["omnileads_app", "omnileads_voice"] and not calls.fatal
    voice, app = calls.args["omnileads_voice"]["calls"], calls.args["omnileads_app"]["calls"]
    assert voice["env_file"] == "/etc/default/asterisk.env" and voice["port"] == 5038 and voice["timeout"] == 30
    assert sorted(voice["units"]) == ["asterisk", "rtpengine"]
    assert voice["address"] == tenant.host("omnileads_voice").lan_ip
    # Kamailio on the app host: the calls are counted on the voice host's Asterisk, with Django's AMI account
    assert app["units"] == ["kamailio"] and app["env_file"] == "/etc/default/django.env"
    assert app["address"] == voice["address"]
    assert "ami-Secret-8812" not in json.dumps(calls.args)  # read from the env file on the host
    task = _playbook(steps)[1]["tasks"][0]
    assert (task["retries"], task["delay"]) == (10, 3) and "report.done" in task["until"]
    # run only where the stage found calls up (a no-op install pays no round trip for it)
    assert task["when"] == "((omldeploy_r0.report | default({})).calls | default({})).waiting | default(false)"
    assert steps[0].args["omnileads_voice"]["calls"] == calls.args["omnileads_voice"]["calls"]
    assert "report.waiting" in _playbook(steps)[1]["tasks"][2]["when"]  # the deadline passed: restart anyway
    redis = phase_steps(tenant, select(render_tenant(tenant), "redis"), ["stage", "activate"])
    assert "calls" not in [s.name for s in redis]  # nothing on the voice path in the selection
    asterisk = phase_steps(tenant, select(render_tenant(tenant), "restart_asterisk"), ["stage", "activate"])
    assert list(next(s for s in asterisk if s.name == "calls").args) == ["omnileads_voice"]
    off = make_tenant("ait", vars={"voice_drain_timeout": 0}, name="t2")
    assert "calls" not in [s.name for s in phase_steps(off, render_tenant(off), ["stage", "activate"])]
    ha = make_tenant("ha", name="t3")  # the rolling run moves the voice VIP instead
    assert all(hb.calls is None for hb in render_tenant(ha).hosts)


def test_check_mode_never_activates(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait")
    steps = phase_steps(tenant, render_tenant(tenant), ["stage", "activate"], check=True)
    assert [s.name for s in steps] == ["stage"]


def test_per_component_selection(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait")
    sel = select(render_tenant(tenant), "redis")
    assert [h.host for h in sel.hosts] == ["omnileads_data"]
    assert {u.name for u in sel.hosts[0].units} == {"redis", "prometheus_redis"}
    paths = {f.path for f in sel.hosts[0].files}
    assert "/etc/default/redis.env" in paths and "/etc/default/postgres.env" not in paths
    assert sel.hosts[0].partial
    app = select(render_tenant(tenant), "app")
    assert {u.name for u in app.hosts[0].units} == {"kamailio", "websockets", "omnileads", "daphne", "omlcron",
                                                    "nginx"}


def test_masked_diff_shows_keys_not_values() -> None:
    mod = host_module()
    diff = mod.masked_diff("/etc/default/x.env", b"A=1\nPGPASSWORD=old-pass\n", b"A=1\nPGPASSWORD=new-pass\nB=2\n",
                           True)
    assert "~ PGPASSWORD=*** (value changed)" in diff and "+ B=***" in diff
    assert "old-pass" not in diff and "new-pass" not in diff
    plain = mod.masked_diff("/etc/x.conf", b"a\n", b"b\n", False)
    assert "-a" in plain and "+b" in plain


STYLES = [("auto", (4, 3), "classic"), ("auto", (4, 4), "quadlet"), ("auto", (5, 4), "quadlet"),
          ("classic", (5, 4), "classic")]


@pytest.mark.parametrize(("requested", "version", "style"), STYLES)
def test_unit_style_by_podman_version(requested: str, version: tuple[int, int], style: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    mod = host_module()
    monkeypatch.setattr(mod, "podman_version", lambda: version)
    assert mod.select_style(requested)[0] == style


def test_quadlet_refused_on_old_podman(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = host_module()
    monkeypatch.setattr(mod, "podman_version", lambda: (4, 3))
    with pytest.raises(RuntimeError, match=r"Quadlet needs 4\.4"):
        mod.select_style("quadlet")


@pytest.mark.parametrize(("action", "units"), [
    ("restart_django", {"daphne", "omnileads", "nginx"}),
    ("restart_asterisk", {"asterisk"}),
    ("restart_core", {"asterisk", "daphne", "omnileads", "nginx"}),
])
def test_restart_sets_select_the_seed_components(make_tenant: MakeTenant, action: str, units: set[str]) -> None:
    bundle = select(render_tenant(make_tenant("aio")), action)
    assert {u.name for hb in bundle.hosts for u in hb.units} == units


def test_restart_leaves_postgresql_and_observability_alone(make_tenant: MakeTenant) -> None:
    bundle = select(render_tenant(make_tenant("ait")), "restart")
    names = {u.name for hb in bundle.hosts for u in hb.units}
    assert {"redis", "asterisk", "rtpengine", "kamailio", "omnileads", "nginx", "websockets"} <= names
    assert not names & {"postgresql", "prometheus", "prometheus_node_exporter", "loki", "promtail"}


def test_forced_restarts_reach_the_activate_call(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    bundle = select(render_tenant(tenant), "restart_django")
    for hb in bundle.hosts:
        hb.force_restart = [u.name for u in hb.units]
    steps = phase_steps(tenant, bundle, ["stage", "activate"])
    activate = [s for s in steps if s.name.startswith("activate")]
    assert activate and all(sorted(a["force_restart"]) == ["daphne", "nginx", "omnileads"]
                            for s in activate for a in s.args.values())
    assert all(a["partial"] for s in activate for a in s.args.values())


@pytest.mark.parametrize(("ref", "repo"), [
    ("10.99.1.1:5000/omnileads/redis:231125.01", "10.99.1.1:5000/omnileads/redis"),
    ("docker.io/library/haproxy", "docker.io/library/haproxy"),
    ("localhost:5000/x/y@sha256:abc", "localhost:5000/x/y"),
])
def test_recycle_groups_images_by_repository_not_by_registry_port(ref: str, repo: str) -> None:
    assert host_module()._repository(ref) == repo


def test_one_crash_loop_check_per_run_when_there_are_tiers(make_tenant: MakeTenant) -> None:
    """AIT: each tier's activate leaves the crash-loop check to one `settle` step on every host at the end
    (one 3 s wait per run, not one per tier). AIO has one tier: its activate checks at once, no extra step."""
    ait = make_tenant("ait")
    steps = phase_steps(ait, render_tenant(ait), ["stage", "activate"])
    activates = [s for s in steps if s.name.startswith("activate")]
    assert len(activates) == 3 and all(a["settle_later"] for s in activates for a in s.args.values())
    assert steps[-1].name == "settle" and sorted(steps[-1].args) == sorted(h.name for h in ait.hosts)
    assert all(a == {"tenant": ait.name, "phase": "settle"} for a in steps[-1].args.values())
    # only where an activate left units to watch (a no-op run pays no round trip), read from the activates'
    # registers wherever they sit in the run (a restore puts stop/switch steps first)
    for run in (steps, [Step("stop", "omldeploy_backup", {}), Step("switch", "omldeploy_backup", {}),
                        *[s for s in steps if s.name != "stage" and s.name != "calls"]]):
        first = next(i for i, s in enumerate(run) if s.name.startswith("activate"))
        assert _playbook(run)[-1]["tasks"][0]["when"] == " or ".join(
            f"((omldeploy_r{k} | default({{}})).report | default({{}})).settle_pending | default(false)"
            for k in range(first, first + 3))
    aio = make_tenant("aio")
    steps = phase_steps(aio, render_tenant(aio), ["stage", "activate"])
    assert [s.name for s in steps if s.name != "calls"] == ["stage", "activate-0"]
    assert steps[-1].args["omnileads_aio"]["settle_later"] is False


def test_nginx_does_not_restart_because_the_app_behind_it_did(make_tenant: MakeTenant) -> None:
    """The restart cascade (a unit restarts with what it depends on) skips the entry point: it reaches the
    app at 127.0.0.1 with a new connection per request, so its own restart would be a second outage."""
    tenant = make_tenant("aio")
    plans = {u.name: u for u in render_tenant(tenant).hosts[0].units}
    assert plans["nginx"].after == ()
    assert "postgresql" in plans["omnileads"].after  # clients of the database still follow it
    env = render_tenant(tenant).hosts[0].file("/etc/default/nginx.env").content.decode()
    assert "DJANGO_HOSTNAME=127.0.0.1" in env and "DAPHNE_HOSTNAME=127.0.0.1" in env


def test_a_file_with_a_named_owner_is_rewritten_when_someone_else_owns_it(tmp_path: Path) -> None:
    """The remote-write password file belongs to the image's user (nobody, 65534): a copy owned by root
    is drift and gets rewritten with that owner; a file without a named owner (HAProxy's certificates,
    chowned by Podman's `:U` at each start) is never rewritten for its owner."""
    if os.geteuid() != 0:
        pytest.skip("chown needs root (CI runs as root)")
    mod = host_module()
    path = str(tmp_path / "remote_write.pass")
    mod.write_atomic(path, b"pw", 0o600)
    assert os.stat(path).st_uid == 0
    assert not mod.up_to_date(path, b"pw", b"pw", 0o600, 65534)  # root-owned, nobody wanted
    mod.write_atomic(path, b"pw", 0o600, 65534)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)
    assert mod.up_to_date(path, b"pw", b"pw", 0o600, 65534)
    assert mod.up_to_date(path, b"pw", b"pw", 0o600, None)  # no owner named: whoever owns it is fine
    assert not mod.up_to_date(path, b"pw", b"new", 0o600, 65534)
    assert not mod.up_to_date(str(tmp_path / "missing"), None, b"pw", 0o600, None)
