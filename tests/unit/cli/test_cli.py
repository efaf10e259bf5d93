"""The operator's entry points: `omldeploy` verbs and the seed-compatible `deploy.sh`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omldeploy.cli.actions import SEED_ACTIONS
from omldeploy.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
SEED_ALLOW_LIST = ["install", "upgrade", "backup", "restore", "voice", "app", "observability", "postgres", "haproxy",
                   "cron", "keepalived", "kamailio", "rtpengine", "asterisk", "sentinel", "redis", "minio",
                   "pgsql_node_recovery_main", "pgsql_node_takeover_main", "redis_node_takeover_main",
                   "pgsql_node_recovery_backup"]


def run(inst: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--instances", str(inst), *args])
    out, err = capsys.readouterr()
    return code, out, err


def deploy_sh(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src")
    e.update(env or {})
    return subprocess.run(["bash", str(ROOT / "deploy.sh"), *args], capture_output=True, text=True, cwd=cwd, env=e)


def test_tenant_new_validate_plan_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inst = tmp_path / "instances"
    code, out, _ = run(inst, "tenant", "new", "acme", "--layout", "ait", capsys=capsys)
    assert code == 0 and "random passwords" in out
    inv = inst / "acme" / "inventory.yml"
    assert inv.stat().st_mode & 0o777 == 0o600
    assert "CHANGE-ME" not in inv.read_text()
    code, out, _ = run(inst, "validate", "--tenant", "acme", capsys=capsys)
    assert code == 0 and "all-in-three" in out and "valid" in out
    code, out, _ = run(inst, "plan", "--tenant", "acme", "--json", capsys=capsys)
    plan = json.loads(out)
    assert [h["host"] for h in plan["hosts"]] == ["omnileads_data", "omnileads_voice", "omnileads_app"]
    assert plan["facts"]["postgres_host"] == "10.10.10.2"
    code, out, _ = run(inst, "plan", "--tenant", "acme", capsys=capsys)
    assert code == 0 and "postgresql.service" in out and "docker.io/omnileads/omlapp:1.27.1" in out
    code, out, _ = run(inst, "render", "--tenant", "acme", "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 0
    assert (tmp_path / "r/omnileads_app/etc/systemd/system/nginx.service").is_file()
    assert (tmp_path / "r/omnileads_app/etc/default/django.env").stat().st_mode & 0o777 == 0o600


def test_second_tenant_gets_other_passwords(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inst = tmp_path / "instances"
    run(inst, "tenant", "new", "a", "--layout", "aio", capsys=capsys)
    run(inst, "tenant", "new", "b", "--layout", "aio", capsys=capsys)
    assert (inst / "a/inventory.yml").read_text() != (inst / "b/inventory.yml").read_text()
    code, _, err = run(inst, "tenant", "new", "a", "--layout", "aio", capsys=capsys)
    assert code == 2 and "already exists" in err


def test_unknown_tenant_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(tmp_path, "validate", "--tenant", "nope", capsys=capsys)
    assert code == 2 and "tenant folder not found" in err and "Traceback" not in err
    code, _, err = run(tmp_path, "validate", "--tenant", "../etc", capsys=capsys)
    assert code == 2 and "not a valid tenant folder name" in err


def test_instances_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMLDEPLOY_INSTANCES", str(tmp_path / "inst"))
    assert main(["tenant", "new", "envt", "--layout", "ha"]) == 0
    assert (tmp_path / "inst/envt/inventory.yml").is_file()
    capsys.readouterr()
    assert main(["tenant", "list"]) == 0
    assert "envt" in capsys.readouterr().out


def test_ha_actions_on_a_tenant_without_ha_change_nothing(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Before any host is asked: the layout alone says these do not apply (exit 2, no ledger entry)."""
    run(tmp_path, "tenant", "new", "t", "--layout", "aio", capsys=capsys)
    for action in ("pgsql_node_takeover_main", "redis_node_takeover_main", "pgsql_node_recovery_main",
                   "pgsql_node_recovery_backup"):
        code, _, err = run(tmp_path, action, "--tenant", "t", capsys=capsys)
        assert code == 2 and "not an HA layout" in err and "nothing was done" in err, err
    code, out, err = run(tmp_path, "ha", "status", "--tenant", "t", capsys=capsys)
    assert code == 2 and out == "" and "not an HA layout" in err
    assert not (tmp_path / "t/.omldeploy/ledger.jsonl").exists()


def test_releases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["releases"]) == 0
    out = capsys.readouterr().out
    assert "1.27.1" in out and "1.26.0" in out  # the text columns belong to the releases verb's owner
    assert main(["releases", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any(r["name"] == "1.26.0" and r["versions"]["nginx_version"] == "230215.01" for r in data["releases"])


def test_deploy_sh_help_lists_every_seed_action() -> None:
    proc = deploy_sh("--help")
    assert proc.returncode == 0
    for action in SEED_ALLOW_LIST:
        assert action in proc.stdout, action
        assert action in SEED_ACTIONS


def test_deploy_sh_maps_onto_omldeploy(tmp_path: Path) -> None:
    copy = tmp_path / "tool"
    copy.mkdir()
    (copy / "deploy.sh").write_text((ROOT / "deploy.sh").read_text())
    assert main(["--instances", str(copy / "instances"), "tenant", "new", "t1", "--layout", "aio"]) == 0
    proc = subprocess.run(["bash", str(copy / "deploy.sh"), "--action=pgsql_node_takeover_main", "--tenant=t1"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2 and "not an HA layout" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(["bash", str(copy / "deploy.sh"), "--action=install", "--tenant=missing"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2 and "tenant folder not found" in proc.stderr


def test_deploy_sh_rejects_bad_arguments() -> None:
    proc = deploy_sh("--action=install")
    assert proc.returncode == 2 and "--tenant" in proc.stderr
    proc = deploy_sh("--frobnicate")
    assert proc.returncode == 2 and "unknown argument" in proc.stderr


def test_module_entry_point_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "omldeploy", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0 and proc.stdout.startswith("omldeploy ")
