"""Beyond one controller (docs/awx.md): the execution-environment definition and the job playbook.

- ansible-builder accepts awx/execution-environment.yml and makes a build context holding the omldeploy
  wheel, the pinned ansible-core and ansible-runner and the install step (the image itself needs its base
  image from quay.io, which this machine cannot reach);
- the wheel alone is the package: installed apart from this checkout, its CLI validates and renders a
  tenant (templates, catalog, host modules all inside it), as it would in the image;
- the job playbook runs one verb on one tenant with ansible-playbook, as AWX would, and refuses survey
  answers that are not a known verb, a plain tenant name or plain arguments, before running anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.ee_image import build_wheel

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_ansible_builder_makes_the_build_context(wheel: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "awx", tmp_path / "awx")
    shutil.copytree(wheel.parent, tmp_path / "dist")
    proc = subprocess.run([str(VENV_BIN / "ansible-builder"), "create", "-f", "awx/execution-environment.yml",
                           "-c", "ctx"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner>=2.4,<2.5"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    final = containerfile[containerfile.rindex("FROM base AS final"):]
    assert "pip install --no-cache-dir /tmp/omldeploy-wheels/omldeploy-*.whl" in final
    assert "RUN omldeploy --version" in final
    assert [p.name for p in (tmp_path / "ctx" / "_build" / "wheels").iterdir()] == [wheel.name]
    bindep = (tmp_path / "ctx" / "_build" / "bindep.txt").read_text()
    assert "openssh-clients" in bindep and "sshpass" in bindep


def test_the_wheel_alone_runs_the_cli(wheel: Path, tmp_path: Path) -> None:
    """Installed apart from the checkout (its dependencies from this environment, the package only from
    the wheel), the CLI creates, validates and renders a tenant and finds the dashboard's files."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("OMLDEPLOY_INSTANCES", None)
    instances = tmp_path / "instances"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(instances), *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import omldeploy, omldeploy.web.app as w; "
                            "print(omldeploy.__file__); print(w.create_app.__module__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # not this checkout's
    assert cli("tenant", "new", "acme", "--layout", "aio").returncode == 0
    valid = cli("validate", "--tenant", "acme", "--json")
    assert valid.returncode == 0 and json.loads(valid.stdout)["valid"], valid.stdout + valid.stderr
    rendered = cli("render", "--tenant", "acme", "--out", str(tmp_path / "out"))
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    assert any((tmp_path / "out").rglob("*.service")) or any((tmp_path / "out").rglob("*.container"))
    static = site / "omldeploy" / "web"
    assert (static / "static" / "style.css").is_file() and (static / "templates" / "index.html").is_file()
    assert (site / "omldeploy" / "apply" / "ansible" / "library" / "omldeploy_host.py").is_file()


def _job(tmp_path: Path, **extra: object) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    if not project.exists():
        project.mkdir()
        shutil.copy2(ROOT / "awx" / "omldeploy-job.yml", project / "omldeploy-job.yml")
        made = subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(project / "instances"),
                               "tenant", "new", "acme", "--layout", "aio"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
        assert made.returncode == 0, made.stderr
    variables = {"omldeploy_cli": str(VENV_BIN / "omldeploy"), **extra}
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "omldeploy-job.yml",
                           "-e", json.dumps(variables)], cwd=project, capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_job_playbook_runs_one_verb_on_one_tenant(tmp_path: Path) -> None:
    ok = _job(tmp_path, omldeploy_verb="validate", tenant="acme")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "omldeploy validate acme" in ok.stdout and "ok=3" in ok.stdout
    plan = _job(tmp_path, omldeploy_verb="plan", tenant="acme", omldeploy_args=["--json"])
    assert plan.returncode == 0 and "omnileads_aio" in plan.stdout, plan.stdout
    missing = _job(tmp_path, omldeploy_verb="status", tenant="nobody")
    assert missing.returncode != 0 and "tenant folder not found" in missing.stdout, missing.stdout


@pytest.mark.parametrize("extra", [
    {"omldeploy_verb": "sandbox", "tenant": "acme"},
    {"omldeploy_verb": "validate", "tenant": "../../etc"},
    {"omldeploy_verb": "validate", "tenant": "acme; rm -rf /"},
    {"omldeploy_verb": "validate", "tenant": ["acme"]},
    {"omldeploy_verb": "validate", "tenant": "acme", "omldeploy_args": ["--instances=/etc"]},
    {"omldeploy_verb": "validate", "tenant": "acme", "omldeploy_args": "--json"},
    {"omldeploy_verb": "validate", "tenant": "acme", "omldeploy_args": ["$(id)"]},
])
def test_the_job_playbook_refuses_hostile_survey_answers(tmp_path: Path, extra: dict[str, object]) -> None:
    proc = _job(tmp_path, **extra)
    assert proc.returncode != 0
    assert "omldeploy_verb must be one of" in proc.stdout and "omldeploy validate" not in proc.stdout, proc.stdout
