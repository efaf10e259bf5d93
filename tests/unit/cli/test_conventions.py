"""CLI conventions (issue 11): global options on either side of the verb, grouped help, `--json` on every
read verb, and the sandbox's answer for a sandbox that does not exist — all through the real entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from omldeploy.backup import catalog
from omldeploy.cli.main import build_parser, main
from omldeploy.cli.parser import GROUPS, children, subparsers_action
from omldeploy.ops.converge import Reporter
from omldeploy.state import ledger

ROOT = Path(__file__).resolve().parents[3]
Capsys = pytest.CaptureFixture[str]


def call(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def python_m(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omldeploy", *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})


@pytest.fixture
def inst(tmp_path: Path) -> Path:
    root = tmp_path / "instances"
    assert main(["--instances", str(root), "tenant", "new", "acme", "--layout", "aio"]) == 0
    return root


def leaves(parser: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    kids = list(children(parser))
    if not kids:
        return [(path, parser)]
    return [leaf for name, child in kids for leaf in leaves(child, (*path, name))]


# ----------------------------------------------------------------------------- global options

def test_global_options_work_before_and_after_the_verb(inst: Path, capsys: Capsys) -> None:
    before = call(capsys, "--instances", str(inst), "validate", "--tenant", "acme")
    after = call(capsys, "validate", "--tenant", "acme", "--instances", str(inst))
    assert before == after and before[0] == 0 and "valid" in before[1]
    nested_before = call(capsys, "--instances", str(inst), "--json", "tenant", "list")
    nested_after = call(capsys, "tenant", "list", "--json", "--instances", str(inst))
    nested_middle = call(capsys, "tenant", "--instances", str(inst), "list", "--json")
    assert nested_before == nested_after == nested_middle
    assert [t["tenant"] for t in json.loads(nested_after[1])["tenants"]] == ["acme"]


def test_option_after_the_verb_wins(inst: Path, tmp_path: Path, capsys: Capsys) -> None:
    code, out, _ = call(capsys, "--instances", str(tmp_path / "elsewhere"), "validate", "-t", "acme",
                        "--instances", str(inst))
    assert code == 0 and "valid" in out
    code, _, err = call(capsys, "--instances", str(inst), "validate", "-t", "acme",
                        "--instances", str(tmp_path / "elsewhere"))
    assert code == 2 and "tenant folder not found" in err
    # and the help says so, at both levels
    assert "the one after the verb wins" in build_parser().format_help()
    code, out, _ = call(capsys, "validate", "--help")
    assert code == 0 and "given twice, this position wins" in out


def test_every_verb_accepts_every_global_option_after_it() -> None:
    parser = build_parser()
    found = leaves(parser)
    assert len(found) > 40
    for path, leaf in found:
        for flag in ("--instances", "-v", "--verbose", "--json"):
            assert flag in leaf._option_string_actions, (path, flag)
    for _, middle in children(parser):  # `backups --json list` too
        if subparsers_action(middle) is not None:
            assert "--json" in middle._option_string_actions


def test_verbose_reaches_the_verb_from_both_sides() -> None:
    parser = build_parser()
    for argv in (["-v", "install", "-t", "x"], ["install", "-t", "x", "-v"], ["install", "--verbose", "-t", "x"]):
        assert parser.parse_args(argv).verbose is True, argv
    assert parser.parse_args(["install", "-t", "x"]).verbose is False
    # a verb's own --json must not reset a --json given before the verb
    assert parser.parse_args(["--json", "plan", "-t", "x"]).json is True
    assert parser.parse_args(["--json", "backups", "list", "-t", "x"]).json is True


def test_json_on_a_verb_without_json_output_is_refused(inst: Path, capsys: Capsys) -> None:
    for argv in (["install", "-t", "acme", "--json"], ["--json", "backup", "-t", "acme"],
                 ["tenant", "new", "z", "--layout", "aio", "--json"]):
        code, out, err = call(capsys, "--instances", str(inst), *argv)
        assert code == 2 and out == "" and "--json is not available" in err, argv
    assert not (inst / "z").exists()


def test_bad_global_option_value_is_exit_2_without_traceback() -> None:
    proc = python_m("validate", "-t", "acme", "--instances")
    assert proc.returncode == 2 and "expected one argument" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- grouped help

def test_help_groups_every_verb_once_with_a_description() -> None:
    proc = python_m("--help")
    assert proc.returncode == 0
    text = proc.stdout
    for title in ("tenants:", "deploy:", "maintenance:", "backups:", "HA:", "sandbox (local test hosts):",
                  "inspection (no host changed):"):
        assert f"\n{title}\n" in text, title
    assert "\nother:\n" not in text, "a verb is missing from GROUPS"
    verbs = list(subparsers_action(build_parser()).choices)  # type: ignore[union-attr]
    grouped = [v for vs in GROUPS.values() for v in vs]
    assert sorted(verbs) == sorted(grouped) and len(grouped) == len(set(grouped))
    for verb in verbs:
        line = re.search(rf"^  {verb}(?: \S+)?(?:\n {{20,}}| +)(\S.*)$", text, re.M)
        assert line and len(line.group(1)) > 10, verb
    assert "backups list|verify|prune" in text and "tenant new|list" in text


def test_no_verb_prints_help_and_exits_2(capsys: Capsys) -> None:
    code, out, _ = call(capsys)
    assert code == 2 and "maintenance:" in out


def test_deploy_sh_help_still_exits_0() -> None:
    proc = subprocess.run(["bash", str(ROOT / "deploy.sh"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--action=ACTION" in proc.stdout


# ----------------------------------------------------------------------------- --json on read verbs

def test_validate_json_reports_problems_with_location_and_keeps_exit_2(inst: Path, capsys: Capsys) -> None:
    inv = inst / "acme" / "inventory.yml"
    data = yaml.safe_load(inv.read_text())
    data["all"]["vars"]["postgres_pasword"] = "x"  # unknown key (typo)
    data["all"]["vars"]["certs"] = "bogus"
    data["all"]["vars"]["postgres_password"] = ["not", "a", "string", "s3cr3t-value"]
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = call(capsys, "validate", "-t", "acme", "--instances", str(inst), "--json")
    assert code == 2 and err == ""
    doc = json.loads(out)
    assert doc["valid"] is False and doc["tenant"] == "acme"
    keys = {p["key"]: p for p in doc["problems"]}
    assert "postgres_pasword" in keys and "certs" in keys
    certs = keys["certs"]
    assert certs["file"].endswith("inventory.yml") and isinstance(certs["line"], int)
    assert certs["found"] == "'bogus'" and certs["allowed"]
    assert "s3cr3t-value" not in out
    # the text form says the same and exits the same
    code, out, err = call(capsys, "validate", "-t", "acme", "--instances", str(inst))
    assert code == 2 and "postgres_pasword" in err


def test_validate_json_warnings_are_structured(inst: Path, capsys: Capsys) -> None:
    inv = inst / "acme" / "inventory.yml"
    text = inv.read_text()
    inv.write_text(text.replace("  vars:\n", "  vars:\n    TZ: America/Argentina/Cordoba\n", 1))
    code, out, _ = call(capsys, "--json", "validate", "-t", "acme", "--instances", str(inst))
    doc = json.loads(out)
    assert code == 0 and doc["valid"] is True and doc["problems"] == [] and doc["layout"] == "aio"
    assert doc["warnings"] and all({"file", "line", "key", "message"} <= set(w) for w in doc["warnings"])
    secrets = [v for k, v in yaml.safe_load(text)["all"]["vars"].items() if "pass" in k]
    assert secrets and not any(str(s) in out for s in secrets)


def test_validate_json_for_an_unknown_tenant(tmp_path: Path, capsys: Capsys) -> None:
    code, out, err = call(capsys, "--instances", str(tmp_path), "validate", "-t", "ghost", "--json")
    doc = json.loads(out)
    assert code == 2 and err == "" and doc["valid"] is False
    assert "tenant folder not found" in doc["problems"][0]["message"]


def test_tenant_list_json(inst: Path, capsys: Capsys) -> None:
    (inst / "broken").mkdir()
    (inst / "broken" / "inventory.yml").write_text("all:\n  hosts: {}\n")
    (inst / "broken" / "inventory.yml").chmod(0o600)  # else its tightening is (rightly) said on stderr
    code, out, err = call(capsys, "tenant", "list", "--json", "--instances", str(inst))
    doc = json.loads(out)
    assert code == 0 and err == ""
    by_name = {t["tenant"]: t for t in doc["tenants"]}
    assert by_name["acme"] == {"tenant": "acme", "layout": "aio", "hosts": 1, "valid": True, "errors": 0,
                               "warnings": 0}
    assert by_name["broken"]["valid"] is False and by_name["broken"]["errors"] >= 1
    secret = re.search(r"postgres_password: (\S+)", (inst / "acme/inventory.yml").read_text())
    assert secret and secret.group(1) not in out
    code, out, _ = call(capsys, "tenant", "list", "--json", "--instances", str(inst / "none"))
    assert code == 0 and json.loads(out)["tenants"] == []


def test_rollback_list_json(inst: Path, capsys: Capsys) -> None:
    folder = inst / "acme"
    for omlapp, outcome in (("1.26.0", "ok"), ("1.27.1", "ok"), ("1.28.0", "failed")):
        ledger.append(folder, ledger.Record(action="upgrade", outcome=outcome, started=f"t-{omlapp}", duration=1.0,
                                            versions={"omnileads_version": omlapp}, extra={"backup": "1"}), redact=str)
    code, out, err = call(capsys, "--instances", str(inst), "rollback", "-t", "acme", "--list", "--json")
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert [(h["n"], h["versions"]["omnileads_version"]) for h in doc["history"]] == [(1, "1.27.1"), (2, "1.26.0")]
    code, out, err = call(capsys, "--instances", str(inst), "rollback", "-t", "acme", "--json")
    assert code == 2 and out == "" and "--json goes with --list" in err


def _fake_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    import omldeploy.ops.backup as ops_backup

    def list_backups(tenant: Any, reporter: Reporter) -> tuple[int, list[catalog.Entry], int]:
        reporter.line("connecting to the bucket (progress that must not reach stdout)")
        return 0, [catalog.Entry("1700000001", "omldeploy", 1700000001, 10, 2, "k", "yes"),
                   catalog.Entry("1700000002", "seed", 1700000002, 20, 1, "k2", "no"),
                   catalog.Entry("1700000003", "incomplete", None, 0, 1, None, "no")], 0

    monkeypatch.setattr(ops_backup, "list_backups", list_backups)


def test_backups_list_json_keeps_stdout_clean_and_writes_the_id_cache(
        inst: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_listing(monkeypatch)
    folder = inst / "acme"
    ledger.append(folder, ledger.Record(action="install", outcome="ok", started="t", duration=1.0, versions={}),
                  redact=str)
    code, out, err = call(capsys, "backups", "list", "--tenant", "acme", "--json", "--instances", str(inst))
    assert code == 0 and "progress that must not reach stdout" in err
    doc = json.loads(out)
    assert [b["id"] for b in doc["backups"]] == ["1700000001", "1700000002", "1700000003"]
    cache = folder / ".omldeploy" / "backup-ids"
    assert cache.stat().st_mode & 0o777 == 0o600
    lines = cache.read_text().splitlines()
    assert lines[0].startswith("#") and lines[0].endswith("ledger-lines=1")
    assert lines[1:] == ["1700000001", "1700000002"]  # incomplete backups are not offered
    password = re.search(r"postgres_password: (\S+)", (folder / "inventory.yml").read_text())
    assert password and password.group(1) not in cache.read_text()
    # the text listing refreshes the cache too
    cache.unlink()
    code, out, _ = call(capsys, "--instances", str(inst), "backups", "list", "-t", "acme")
    assert code == 0 and "1700000002" in out and cache.is_file()


# ----------------------------------------------------------------------------- sandbox status

def test_sandbox_status_of_a_missing_sandbox_is_exit_2(tmp_path: Path) -> None:
    env = {"OMLDEPLOY_SANDBOX_ROOT": str(tmp_path / "sb")}
    proc = python_m("sandbox", "status", "--name", "nope", env=env)
    assert proc.returncode == 2 and "no sandbox named 'nope'" in proc.stderr and proc.stdout == ""
    assert "sandbox up --name nope" in proc.stderr and "Traceback" not in proc.stderr
    proc = python_m("sandbox", "status", "--name", "Bad_Name", env=env)
    assert proc.returncode == 2 and "invalid sandbox name" in proc.stderr
    proc = python_m("sandbox", "status", env=env)  # no name: "no sandboxes" is an answer, not an error
    assert proc.returncode == 0 and "no sandboxes" in proc.stdout
