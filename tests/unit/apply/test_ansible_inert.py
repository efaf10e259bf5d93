"""Inventory values handed to Ansible are never templated again (issue 12, M1).

Our sandbox resolves inventory expressions once; `{% raw %}{{ lookup('pipe', ...) }}{% endraw %}` comes
out of it as the text `{{ lookup('pipe', ...) }}`. If Ansible templated that text again, unsandboxed, it
would run a command on the controller. This runs the engine's real path (`run_steps`: the runner inventory
it writes, the playbook it builds, the argument files read through a lookup) with ansible-runner and
ansible-playbook against the controller itself: the only change to the validated tenant is
`ansible_connection: local`, which a test sets on the loaded model because there is no SSH target in unit
tests. Every hostile value is then read by a task (`debug: var=...`), which is what templates a variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from omldeploy.apply.engine import Step, _connection_vars, inventory_yaml, run_steps
from omldeploy.inventory.model import Tenant
from tests.unit.conftest import MakeTenant

HOSTILE_VARS = ("ansible_user", "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_become_user",
                "ansible_omldeploy_note")


def _hostile(marker: Path, name: str) -> str:
    return "{% raw %}{{ lookup('pipe', 'touch " + str(marker) + "." + name + "') }}{% endraw %}"


def _tenant(make_tenant: MakeTenant, marker: Path) -> Tenant:
    host_vars = {k: _hostile(marker, k) for k in HOSTILE_VARS}
    tenant = make_tenant("aio", hosts={"omnileads_aio": host_vars})
    host = tenant.hosts[0]
    # the validated values came out of our sandbox as text holding {{ ... }}: the case to prove inert
    assert host.connection["ansible_user"].startswith("{{ lookup('pipe'")
    local = replace(host, connection={**host.connection, "ansible_connection": "local",
                                      "ansible_python_interpreter": sys.executable})
    return replace(tenant, hosts=(local,))


@pytest.mark.parametrize("check", [False, True], ids=["install", "check"])
def test_engine_run_does_not_template_hostile_values(make_tenant: MakeTenant, tmp_path: Path, check: bool) -> None:
    """The engine's own run (inventory + playbook + argument files) with hostile connection variables and
    a hostile module argument: nothing runs. (The local connection reads few connection variables; the
    next test reads every one.)"""
    marker = tmp_path / "pwned"
    tenant = _tenant(make_tenant, marker)
    name = tenant.hosts[0].name
    hostile_arg = "{{ lookup('pipe', 'touch " + str(marker) + ".args') }}"
    result = run_steps(tenant, [Step("args", "ansible.builtin.debug", {name: {"msg": hostile_arg}})], check=check)
    assert result.aborted is None, result.aborted
    assert result.ok, result.hosts[name]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned")) == []


def _play(tmp_path: Path, inventory_text: str, names: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on an inventory file with a task that reads every variable in `names`."""
    (tmp_path / "hosts.yml").write_text(inventory_text)
    msg = " ".join("{{ " + n + " }}" for n in names)
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": [
        {"ansible.builtin.debug": {"msg": msg}}]}]))
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_every_connection_variable_stays_text(make_tenant: MakeTenant, tmp_path: Path) -> None:
    """The runner inventory exactly as the engine writes it (`_connection_vars` + `inventory_yaml`), read by
    ansible-playbook with every hostile variable used in a template: printed as text, never run. The same
    inventory written without the `!unsafe` tags does run the command, so this test would catch a
    regression."""
    marker = tmp_path / "pwned"
    tenant = _tenant(make_tenant, marker)
    host = tenant.hosts[0]
    inventory = {"all": {"hosts": {host.name: _connection_vars(host)}, "vars": {"omldeploy_dir": str(tmp_path)}}}
    safe = _play(tmp_path, inventory_yaml(inventory), HOSTILE_VARS)
    assert safe.returncode == 0, safe.stdout + safe.stderr
    assert "lookup(" in safe.stdout  # the text itself was printed
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned")) == []
    # control: the plain dump the engine wrote before this fix lets Ansible run the command
    _play(tmp_path, yaml.safe_dump(inventory), ("ansible_user",))
    assert (tmp_path / "pwned.ansible_user").exists()


def test_runner_inventory_tags_every_string_unsafe() -> None:
    text = inventory_yaml({"all": {"hosts": {"h1": {"ansible_user": "{{ x }}", "ansible_port": 22,
                                                    "ansible_ssh_common_args": "-o A=b"}},
                                   "vars": {"omldeploy_dir": "/tmp/d"}}})
    assert "ansible_user: !unsafe '{{ x }}'" in text
    assert "ansible_ssh_common_args: !unsafe '-o A=b'" in text
    assert "ansible_port: 22" in text and "h1:" in text and "!unsafe 'h1'" not in text
