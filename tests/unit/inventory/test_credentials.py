"""Example placeholders are refused (exit 2, file/line/key, how to fix); weak passwords only warn."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from omldeploy.cli.tenants import with_random_secrets
from omldeploy.inventory.credentials import PASSWORD_KEYS, PLACEHOLDER, weakness
from tests.unit.inventory.conftest import LAYOUTS, build, errors, example_text, replace, set_host

WEAK = ("admin123", "password", "omnileads", "Omnileads2024!", "P@ssw0rd12345", "aaaaaaaaaaaaaaaa",
        "abcabcabcabcabc", "adminpassword", "123456789012345", "lowercaseonlyhere")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_shipped_example_is_refused_naming_every_placeholder(layout: str, tenant_dir: Any) -> None:
    text = build(layout, placeholders=True)
    td = tenant_dir(text, name=layout)
    placeholder_lines = {i + 1: line.split(":", 1)[0].strip() for i, line in enumerate(text.splitlines())
                         if PLACEHOLDER.search(line) and not line.lstrip().startswith("#")}
    assert placeholder_lines, "the example has placeholders"
    problems = errors(td.problems())
    assert {(p.line, p.key) for p in problems} == set(placeholder_lines.items())
    result = td.validate()
    assert result.code == 2 and "Traceback" not in result.err
    for line, key in placeholder_lines.items():
        assert f"{td.inventory}:{line}: error: {key}: still holds the example placeholder" in result.err
    assert "omldeploy tenant new" in result.err


def test_a_placeholder_in_a_host_variable_is_named_with_its_host(tenant_dir: Any) -> None:
    td = tenant_dir(build("aio", set_host("omnileads_aio", "ansible_password", "CHANGE-ME-ssh")))
    problems = errors(td.problems())
    assert [p.key for p in problems] == ["omnileads_aio.ansible_password"]
    assert problems[0].line is not None and problems[0].found is None


def test_tenant_new_replaces_every_placeholder_with_a_strong_value() -> None:
    for layout in LAYOUTS:
        text = with_random_secrets(example_text(layout))
        assert not PLACEHOLDER.search(text)
        for key in PASSWORD_KEYS:
            match = re.search(rf"^\s+{key}: (\S+)$", text, re.M)
            if match:
                assert weakness(match.group(1)) is None, (layout, key)


@pytest.mark.parametrize("password", WEAK)
def test_weak_password_is_a_warning_that_never_shows_it(password: str, tenant_dir: Any) -> None:
    assert weakness(password) is not None
    td = tenant_dir(build("aio", replace("ami_password: CHANGE-ME-ami", f"ami_password: '{password}'")))
    tenant = td.load()
    weak = [w for w in tenant.warnings if "ami_password" in w]
    assert len(weak) == 1 and "weak password" in weak[0]
    assert "(found:" not in weak[0]
    fixed = (str(td.instances), "weak password", "ami_password")  # the message's own words and path

    def shown(text: str) -> str:
        for word in fixed:
            text = text.replace(word, "")
        return text

    assert password not in shown(weak[0])
    result = td.validate()
    assert result.code == 0, result.err
    assert "weak password" in result.err
    assert password not in shown(result.err + result.out)


@pytest.mark.parametrize("password", ("correct-Horse-battery-9", "k7Qz2xVb9LmN", "e2e-0123456789abcdef0123",
                                      "averylonglowercasepassphrasewithoutdigits"))
def test_strong_passwords_pass(password: str) -> None:
    assert weakness(password) is None


def test_every_password_key_is_checked(tenant_dir: Any) -> None:
    muts = [replace(f"{key}: CHANGE-ME-{what}", f"{key}: admin123")
            for key, what in (("postgres_password", "postgres"), ("s3_http_admin_pass", "minio-admin"),
                              ("bucket_secret_key", "bucket-secret"), ("dialer_password", "dialer"))]
    tenant = tenant_dir(build("aio", *muts)).load()
    flagged = {w.split(": ")[2] for w in tenant.warnings if "weak password" in w}
    assert flagged == {"postgres_password", "s3_http_admin_pass", "bucket_secret_key", "dialer_password"}


def test_hostile_long_values_are_judged_quickly_without_exhausting_the_stack() -> None:
    """An inventory value is hostile input: the word split must not recurse per word (it used to end
    in RecursionError, exit 70) nor take quadratic time."""
    for value in ("password" * 2000, "omnileads" * 1000, "Xk3-9fQz-pL2m" + "q" * 100_000):
        # CPU time of this process, not wall time: the property is the algorithm's cost, and a loaded CI
        # machine (the HA tier runs beside this suite) stretches wall time, not CPU time
        t0 = time.process_time()
        weakness(value)
        assert time.process_time() - t0 < 2.0
    assert weakness("omnileads" * 1000) == "made of dictionary words, digits and symbols only"
