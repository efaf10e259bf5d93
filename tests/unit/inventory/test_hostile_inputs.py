"""Issue 12's inventory findings, one regression test each: host names (H1), alias and Jinja bombs (M2),
and the low items of the inventory path (anchors, secrets in errors, duplicate keys, identifiers, control
characters, URL credentials, VIPs, VRRP ids, ports, retention, `!unsafe`, the port's name, TLS of the
bucket, disabled host key checking)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omldeploy.cli.context import TENANT_NAME
from tests.unit.inventory.conftest import (
    TenantDir,
    build,
    describe,
    errors,
    replace,
    run_cli,
    set_host,
    set_var,
    text,
)

MakeDir = Callable[..., TenantDir]
LIBRARY = Path(__file__).resolve().parents[3] / "src/omldeploy/apply/ansible/library"


def _keys(problems: list) -> set[str]:  # type: ignore[type-arg]
    return {p.key for p in errors(problems)}


# ------------------------------------------------------------------------------------------- H1 host names

BAD_HOST_NAMES = ["aio[1:2]", "app:2222", "a,b", "x y", "/etc/x", "../up", "a'b", 'a"b', "a\nb", "-dash",
                  ".hidden", "a" * 64, "a\u2028b", "a;b", "a$b", "{{ x }}", "aio\n"]


@pytest.mark.parametrize("name", BAD_HOST_NAMES)
def test_unsafe_host_names_are_refused(tenant_dir: MakeDir, name: str) -> None:
    inv = build("aio", replace("    omnileads_aio:\n      omlaio", f"    {json.dumps(name)}:\n      omlaio"))
    td = tenant_dir(inv)
    problems = errors(td.problems())
    named = [p for p in problems if "host name" in p.message]
    assert named, describe(problems)
    assert "letters, digits" in (named[0].allowed or "")
    assert named[0].line is not None
    result = td.validate()
    assert result.code == 2 and "Traceback" not in result.err + result.out


@pytest.mark.parametrize("name", ["omnileads_aio", "aio-1", "node1.example.com", "1host", "a" * 63])
def test_plain_host_names_are_accepted(tenant_dir: MakeDir, name: str) -> None:
    inv = build("aio", replace("omnileads_aio", name, count=-1))
    assert tenant_dir(inv).load().hosts[0].name == name


@pytest.mark.parametrize(("key", "value"), [
    ("omlapp_repo", "evil/../x"), ("omlapp_repo", "Upper"), ("omlapp_repo", "a b"), ("ami_user", "adm]\n[x"),
    ("ami_user", "a b"), ("dialer_user", "x'y"), ("bucket_region", "us east"),
])
def test_identifiers_written_into_configs_are_checked(tenant_dir: MakeDir, key: str, value: str) -> None:
    assert key in _keys(tenant_dir(build("aio", set_var(key, value))).problems())


@pytest.mark.parametrize("address", ["1.2.3.4 evil", "host\n", "x'y", "300.1.1.1", "-oProxyCommand=x"])
def test_ansible_host_must_be_an_address(tenant_dir: MakeDir, address: str) -> None:
    problems = tenant_dir(build("aio", set_host("omnileads_aio", "ansible_host", address))).problems()
    assert "omnileads_aio.ansible_host" in _keys(problems), describe(problems)


def test_plain_identifiers_are_accepted(tenant_dir: MakeDir) -> None:
    tenant_dir(build("aio", set_var("omlapp_repo", "my-org/mirror"), set_var("ami_user", "oml.ami@x"))).load()


# ------------------------------------------------------------------------------------------- M2 bombs

ALIAS_BOMB = """all:
  vars:
    a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

JINJA_BOMBS = [
    "{{ '%999999999s' % 'a' }}", "{{ '%*d' % (999999999, 1) }}", "{{ '%.999999999f' % 1 }}",
    "{{ 'a'.center(10**9) }}", "{{ 'a'|center(10**9) }}", "{{ 'a'.ljust(10**8) }}", "{{ 'x'|indent(10**9) }}",
    "{{ ('a'*10000)*10000 }}", "{{ 'a'*10**9 }}", "{{ ('a'*9999) + ('a'*9999) + ('a'*9999) }}",
    "{{ [[1]*10000]*10000 }}", "{{ 9**(9**9) }}", "{{ (10**64)**64**64 }}",
    "{% for i in range(10**6) %}{% for j in range(10**6) %}x{% endfor %}{% endfor %}",
    "{{ range(10**9)|list }}", "{{ range(100000)|join(',') }}", "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:{}}'.format(1, 10**9) }}", "{{ '%99999s'|format(1) }}", "{{ 'abc'.replace('', 'x'*10000) }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "{{ 'x' * 1000 }}" * 30,
]


_MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], check=False)
sys.stderr.write("\\n@peak %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(proc.returncode)
"""


def _peak_run(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run the real CLI in a child; its wall time and peak RSS (bytes, from the kernel's accounting).

    The peak is read by a fresh wrapper process whose only child is the CLI: RUSAGE_CHILDREN of this test
    process holds the largest child it ever waited for (an ansible run earlier in the session), not this one.
    """
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "omldeploy", *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    elapsed = time.monotonic() - t0
    found = re.search(r"\n@peak (\d+)\n\Z", proc.stderr)
    assert found, proc.stderr[-2000:]
    proc.stderr = proc.stderr[:found.start()]
    return proc, elapsed, int(found.group(1)) * 1024


def test_every_bomb_is_refused_within_5s_and_256mb(tmp_path: Path) -> None:
    """One inventory holding an alias bomb, then one with every Jinja bomb: `validate` in a child process
    ends with exit 2 and a clear error per bomb, within 5 s and 256 MB each."""
    instances = tmp_path / "instances"
    (instances / "aliases").mkdir(parents=True)
    (instances / "aliases" / "inventory.yml").write_text(ALIAS_BOMB)
    jinja = build("aio")
    extra = "".join(f"    bomb_{i}: {json.dumps(b)}\n" for i, b in enumerate(JINJA_BOMBS))
    jinja = jinja.replace("  vars:\n", "  vars:\n" + extra, 1)
    (instances / "jinja").mkdir()
    (instances / "jinja" / "inventory.yml").write_text(jinja)
    env = dict(os.environ)
    for tenant, expect in (("aliases", "aliases"), ("jinja", "bomb_")):
        proc, elapsed, peak = _peak_run(["--instances", str(instances), "validate", "--tenant", tenant, "--json"],
                                        env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert elapsed < 5, f"{tenant}: {elapsed:.1f} s"
        assert peak < 256 * 2**20, f"{tenant}: {peak / 2**20:.0f} MB"
        report = json.loads(proc.stdout)
        assert any(expect in (p["key"] + p["message"]) for p in report["problems"]), report["problems"]
    # each Jinja bomb got its own error (they are unknown keys too, so resolve them as a known key)
    for bomb in JINJA_BOMBS:
        folder = instances / "one"
        folder.mkdir(exist_ok=True)
        (folder / "inventory.yml").write_text(build("aio", set_var("email_default_from", bomb)))
        t0 = time.monotonic()
        result = run_cli("--instances", str(instances), "validate", "--tenant", "one")
        assert result.code == 2, (bomb, result.out)
        assert "email_default_from" in result.out + result.err, bomb
        assert time.monotonic() - t0 < 5, bomb


def test_alias_bomb_error_is_clear(tenant_dir: MakeDir) -> None:
    problems = tenant_dir(ALIAS_BOMB).problems()
    assert any("aliases" in p.message and p.key == "(yaml)" for p in problems), describe(problems)


def test_ordinary_aliases_still_work(tenant_dir: MakeDir) -> None:
    inv = build("aio").replace("    ansible_user: root\n", "    ansible_user: &u root\n    email_user: *u\n", 1)
    assert tenant_dir(inv).load().settings.text("email_user") == "root"


def test_tenant_list_is_not_blocked_by_a_poisoned_tenant(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    for name, inv in (("good", build("aio")), ("poisoned", ALIAS_BOMB),
                      ("poisoned2", build("aio", set_var("email_default_from", JINJA_BOMBS[0])))):
        (instances / name).mkdir(parents=True)
        (instances / name / "inventory.yml").write_text(inv)
    t0 = time.monotonic()
    result = run_cli("--instances", str(instances), "tenant", "list", "--json")
    assert time.monotonic() - t0 < 5
    assert result.code == 0
    rows = {t["tenant"]: t for t in json.loads(result.out)["tenants"]}
    assert rows["good"]["valid"] and not rows["poisoned"]["valid"] and not rows["poisoned2"]["valid"]


# ------------------------------------------------------------------------------------------- low items

@pytest.mark.parametrize("name", ["t1\n", "t1\n\n"])
def test_tenant_names_ending_in_newline_are_refused(name: str) -> None:
    assert TENANT_NAME.match(name) is None
    assert TENANT_NAME.match("t1") is not None
    for module in ("omldeploy_host.py", "omldeploy_ha.py", "omldeploy_backup.py"):
        src = (LIBRARY / module).read_text()
        patterns = re.findall(r're\.match\(r"(\^\[A-Za-z0-9\][^"]*)", p\["tenant"\]', src)
        assert patterns, module
        assert all(re.match(pat, name) is None for pat in patterns), module


def test_cli_refuses_tenant_with_newline(tmp_path: Path) -> None:
    folder = tmp_path / "t1\n"  # a folder can be named so; `$` matched it and the tenant loaded
    folder.mkdir()
    (folder / "inventory.yml").write_text(build("aio"))
    result = run_cli("--instances", str(tmp_path), "validate", "--tenant", "t1\n")
    assert result.code == 2
    assert "not a valid tenant folder name" in result.out + result.err


SECRET = "Zq9#secret-Value-4711"


@pytest.mark.parametrize("value", [SECRET + "\x00", SECRET + "\u2028", SECRET + "\x07", SECRET + "\u200b"])
def test_control_characters_in_passwords_are_refused_without_echo(tenant_dir: MakeDir, value: str) -> None:
    td = tenant_dir(build("aio", set_var("postgres_password", value)))
    problems = td.problems()
    assert "postgres_password" in _keys(problems), describe(problems)
    result = td.validate()
    assert result.code == 2
    assert SECRET not in result.out + result.err
    assert SECRET not in describe(problems)


@pytest.mark.parametrize("value", ["{{ '" + SECRET + "' ~ nope }}", SECRET + "\nsecond line", "{{ '" + SECRET + "'"])
def test_errors_about_secrets_never_repeat_them(tenant_dir: MakeDir, value: str) -> None:
    td = tenant_dir(build("aio", set_var("ami_password", value)))
    problems = td.problems()
    assert "ami_password" in _keys(problems)
    assert SECRET not in describe(problems)
    result = td.validate()
    assert SECRET not in result.out + result.err


def test_secret_yaml_read_errors_do_not_echo(tenant_dir: MakeDir) -> None:
    inv = build("aio").replace("  vars:\n", f"  vars:\n    dialer_password: !!int {SECRET}\n", 1)
    problems = tenant_dir(inv).problems()
    assert SECRET not in describe(problems)


def test_duplicate_keys_compare_source_text(tenant_dir: MakeDir) -> None:
    inv = build("aio").replace("    asterisk_version: 230508.01\n",
                               "    asterisk_version: 230210.10\n    asterisk_version: 230210.1\n", 1)
    problems = tenant_dir(inv).problems()
    assert any(p.key == "all.vars.asterisk_version" and "different values" in p.message for p in errors(problems))


def test_bucket_url_with_credentials_is_refused_and_never_printed(tenant_dir: MakeDir) -> None:
    td = tenant_dir(build("cloud", set_var("bucket_url", f"https://user:{SECRET}@s3.example.com")))
    problems = td.problems()
    assert any(p.key == "bucket_url" and "credentials" in p.message for p in errors(problems))
    result = td.validate()
    assert result.code == 2 and SECRET not in result.out + result.err


@pytest.mark.parametrize(("mutation", "key", "fragment"), [
    (set_var("postgres_host", "fd00::10"), "postgres_host", "IPv6"),
    (set_var("voice_host", "10.99.0.10"), "voice_host", "outside the hosts' subnet"),
    (set_var("ha_vrid_base", 300), "ha_vrid_base", "VRRP"),
    (set_var("ha_vrid_base", 252), "ha_vrid_base", "VRRP"),
    (set_var("ha_vrid_base", 0), "ha_vrid_base", "VRRP"),
    (set_var("redis_port", 70000), "redis_port", "TCP port"),
    (set_var("email_port", 65536), "email_port", "TCP port"),
    (set_var("backup_keep", 0), "backup_keep", "at least 1"),
    (set_var("backup_keep_days", 0), "backup_keep_days", "at least 1"),
])
def test_ranges(tenant_dir: MakeDir, mutation: object, key: str, fragment: str) -> None:
    problems = tenant_dir(build("ha", mutation)).problems()  # type: ignore[arg-type]
    assert any(p.key == key and fragment in p.message for p in errors(problems)), describe(problems)


def test_ranges_accept_the_edges(tenant_dir: MakeDir) -> None:
    tenant_dir(build("ha", set_var("ha_vrid_base", 251), set_var("backup_keep", 1))).load()
    tenant_dir(build("ha", set_var("ha_vrid_base", 1))).load()


def test_unsafe_tag_is_refused(tenant_dir: MakeDir) -> None:
    inv = build("aio").replace("    ansible_user: root\n", "    ansible_user: !unsafe '{{ x }}'\n", 1)
    problems = tenant_dir(inv).problems()
    assert any("!unsafe" in p.message for p in errors(problems)), describe(problems)


def test_ansible_port_is_reported_under_its_own_name(tenant_dir: MakeDir) -> None:
    inv = build("aio", text(build("aio").replace("      ansible_ssh_port: 22\n", "      ansible_port: 99999\n")))
    problems = tenant_dir(inv).problems()
    assert "omnileads_aio.ansible_port" in _keys(problems), describe(problems)


def test_ha_examples_verify_the_bucket_tls(tenant_dir: MakeDir) -> None:
    for layout in ("ha", "ha_aio"):
        assert "callrec_device: s3\n" in build(layout)
    t = tenant_dir(build("ha", set_var("callrec_device", "s3-no-check-cert"))).load()
    assert any("without checking its certificate" in w for w in t.warnings)


def test_disabled_host_key_checking_is_warned_once(tenant_dir: MakeDir) -> None:
    inv = build("ait", *(set_host(h, "ansible_ssh_common_args", "-o StrictHostKeyChecking=no")
                         for h in ("omnileads_data", "omnileads_voice")))
    t = tenant_dir(inv).load()
    warned = [w for w in t.warnings if "host key checking off" in w]
    assert len(warned) == 1 and "omnileads_data, omnileads_voice" in warned[0] and "accept-new" in warned[0]
    assert not [w for w in tenant_dir(build("ait"), name="t2").load().warnings if "host key" in w]
