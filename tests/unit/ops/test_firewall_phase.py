"""The firewall phase's plan (ops/firewall.py): which hosts get `apply`, which get `confirm`, and that
the confirmation goes over a new SSH connection (no shared ControlMaster)."""

from __future__ import annotations

from pathlib import Path

from omldeploy.apply.engine import HostResult, RunResult, _ansible_env
from omldeploy.ops.firewall import apply_step, confirm_step
from omldeploy.render.bundle import Bundle, HostBundle
from tests.unit.conftest import MakeTenant


def _bundle(*scripts: str | None) -> Bundle:
    b = Bundle("t1", "ait")
    for i, script in enumerate(scripts):
        b.hosts.append(HostBundle(f"h{i}", "10.0.0.1", 22, "10.0.0.1", ("aio",), "auto", firewall=script))
    return b


def test_no_step_without_a_ruleset(make_tenant: MakeTenant) -> None:
    assert apply_step(make_tenant("aio"), _bundle(None)) is None


def test_apply_carries_the_ruleset_and_the_delay(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={"firewall": "nftables", "firewall_rollback_seconds": 45})
    step = apply_step(tenant, _bundle("table inet omldeploy {}", None))
    assert step is not None and step.module == "omldeploy_firewall"
    assert step.args == {"h0": {"tenant": "t1", "phase": "apply", "ruleset": "table inet omldeploy {}",
                                "rollback_seconds": 45}}
    assert apply_step(tenant, _bundle("x"), seconds=3).args["h0"]["rollback_seconds"] == 3  # type: ignore[union-attr]


def test_only_changed_hosts_are_confirmed(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    applied = RunResult(ok=True, check=False, duration=1.0, hosts={
        "a": HostResult("a", reports={"firewall": {"changed": True, "token": "ab" * 16}}),
        "b": HostResult("b", reports={"firewall": {"changed": False, "summary": "firewall unchanged"}}),
    })
    step = confirm_step(tenant, applied)
    assert step is not None and step.name == "confirm"
    assert step.args == {"a": {"tenant": "t1", "phase": "confirm", "token": "ab" * 16}}
    applied.hosts.pop("a")
    assert confirm_step(tenant, applied) is None


def test_confirmation_uses_a_new_ssh_connection(tmp_path: Path) -> None:
    assert "ControlMaster=auto" in _ansible_env(tmp_path)["ANSIBLE_SSH_ARGS"]
    fresh = _ansible_env(tmp_path, fresh_connection=True)["ANSIBLE_SSH_ARGS"]
    assert "ControlMaster=no" in fresh and "ControlPath=none" in fresh and "ControlPersist" not in fresh
