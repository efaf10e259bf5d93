"""Drift findings from the host module's check-mode stage and status reports."""

from __future__ import annotations

from omldeploy.apply.engine import HostResult, RunResult
from omldeploy.ops.drift import OWNER_FILE, findings, steps
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant


def _clean(units: list[dict[str, object]]) -> dict[str, object]:
    return {"units": [{"unit": u["name"], "state": "active", "sub": "running", "image": u["image"],
                       "want_image": u["image"], "healthy": True, "detail": "ok", "enabled": u["enabled"]}
                      for u in units], "timers": []}


def _run(tenant_hosts: dict[str, HostResult], aborted: str | None = None) -> RunResult:
    return RunResult(ok=aborted is None, check=True, duration=1.0, hosts=tenant_hosts, aborted=aborted)


def test_the_steps_are_a_check_mode_stage_then_status_and_nothing_else(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait")
    bundle = render_tenant(tenant)
    assert [s.name for s in steps(tenant, bundle)] == ["stage", "status"]


def test_a_host_as_rendered_has_no_drift(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    bundle = render_tenant(tenant)
    hb = bundle.hosts[0]
    units = [{"name": u.name, "image": u.image, "enabled": u.enabled} for u in hb.units]
    stage = {"changed_files": [], "diffs": {}, "to_pull": [], "removed_units": [], "restart": []}
    res = _run({hb.host: HostResult(hb.host, reports={"stage": stage, "status": _clean(units)}, answered=True)})
    found = findings(tenant, bundle, res)
    assert not found.drifted and found.reached and found.findings == []


def test_every_kind_of_difference_is_named_with_its_host(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    bundle = render_tenant(tenant)
    hb = bundle.hosts[0]
    nginx = next(u for u in hb.units if u.name == "nginx")
    edited = nginx.files[0]
    units = [{"name": u.name, "image": u.image, "enabled": u.enabled} for u in hb.units]
    status = _clean(units)
    by_name = {u["unit"]: u for u in status["units"]}  # type: ignore[attr-defined]
    by_name["redis"].update(state="inactive", sub="dead", healthy=False, detail="not running")
    by_name["kamailio"].update(image="registry/kamailio:old")
    by_name["rtpengine"].update(healthy=False, detail="port 22222 closed")
    status["timers"] = [{"timer": "omldeploy-backup-t1.timer", "state": "inactive"}]
    stage = {"changed_files": [OWNER_FILE, "/etc/omnileads/x/", edited], "diffs": {edited: "-a\n+b"},
             "to_pull": ["registry/omlapp:2"], "removed_units": ["old-thing"],
             "restart": ["nginx", "asterisk"]}
    res = _run({hb.host: HostResult(hb.host, reports={"stage": stage, "status": status}, answered=True)})
    found = findings(tenant, bundle, res)
    texts = [f.text() for f in found.findings]
    host = hb.host
    assert f"{host}: host owner marker: missing: this tenant was never installed here" in texts
    assert f"{host}: directory /etc/omnileads/x/: missing" in texts
    assert f"{host}: file {edited}: differs from the rendered one" in texts
    assert f"{host}: image registry/omlapp:2: not on the host" in texts
    assert f"{host}: unit old-thing: still on the host but no longer placed here" in texts
    assert f"{host}: unit redis: inactive (dead), should run" in texts
    assert any(t.startswith(f"{host}: unit kamailio: runs registry/kamailio:old") for t in texts)
    assert f"{host}: unit rtpengine: running but unhealthy: port 22222 closed" in texts
    assert f"{host}: timer omldeploy-backup-t1.timer: inactive, should be armed" in texts
    # nginx restarts because its file changed; asterisk owes a restart from an earlier run
    assert not any(": restart nginx" in t for t in texts)
    assert any(t.startswith(f"{host}: restart asterisk: owed") for t in texts)
    assert found.diffs == {host: {edited: "-a\n+b"}}


def test_an_unreached_host_and_a_timed_out_run_are_findings(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait")
    bundle = render_tenant(tenant)
    names = [hb.host for hb in bundle.hosts]
    hosts = {names[0]: HostResult(names[0], unreachable=True, error="ssh: connect: Connection refused\nmore",
                                  answered=True),
             names[1]: HostResult(names[1])}
    res = _run(hosts, aborted="stopped after 5 s (the run's time limit); hosts that had not answered: x")
    found = findings(tenant, bundle, res)
    by_host = {f.host: f for f in found.findings}
    assert by_host[names[0]].what == "unreachable" and by_host[names[0]].detail == "ssh: connect: Connection refused"
    assert by_host[names[1]].what == "not checked" and "time limit" in by_host[names[1]].detail
    assert by_host[names[2]].what == "not checked"  # no result at all
    assert not found.reached and found.drifted
