"""Secret files by construction (render/taint.py) and redaction of encoded forms (state/secret_forms.py).

Regressions of issue 12 M3/M9: a password reaching a file only URL-encoded left that file unflagged
(its `--check` diff shown in clear), and a password that is a common word made rendering refuse
unrelated 0644 files.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shlex
from pathlib import Path
from urllib.parse import quote

import pytest

from omldeploy.components.base import ConfigFile
from omldeploy.components.registry import by_name
from omldeploy.render.build import RenderError, render_tenant
from omldeploy.state.runlog import Redactor
from tests.unit.conftest import MakeTenant

DSN_ENV = "/etc/default/prometheus_postgres.env"


def test_a_file_holding_the_password_only_url_encoded_is_secret(make_tenant: MakeTenant) -> None:
    password = "pa ss%word/x@y"
    tenant = make_tenant("aio", vars={"postgres_password": password})
    f = render_tenant(tenant).host("omnileads_aio").file(DSN_ENV)
    assert password.encode() not in f.content and quote(password, safe="").encode() in f.content
    assert f.secret and f.mode == 0o600


def test_a_password_that_is_a_common_word_renders(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio", vars={"postgres_password": "network"})
    bundle = render_tenant(tenant)
    hb = bundle.host("omnileads_aio")
    public_with_word = [f.path for f in hb.files if b"network" in f.content and f.mode & 0o077]
    assert public_with_word, "the word occurs in public files, which are not built from the password"
    assert not any(hb.file(p).secret for p in public_with_word)
    assert hb.file("/etc/default/postgres.env").secret


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_file_built_from_a_hash_of_a_secret_is_secret(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch,
                                                        mode: int) -> None:
    tenant = make_tenant("aio", vars={"ami_password": "ami-Secret-9x"})
    comp = by_name("nginx")

    def configs(self: object, ctx) -> list[ConfigFile]:  # type: ignore[no-untyped-def]
        digest = hashlib.sha256(ctx.tenant.settings.text("ami_password").encode()).hexdigest()
        return [ConfigFile("/etc/omnileads/hashed.conf", f"h={digest}\n", mode)]

    monkeypatch.setattr(type(comp), "configs", configs)
    if mode == 0o644:
        with pytest.raises(RenderError, match=r"hashed\.conf \(0644\)"):
            render_tenant(tenant)
    else:
        assert render_tenant(tenant).host("omnileads_aio").file("/etc/omnileads/hashed.conf").secret


def test_generated_secrets_taint_too(make_tenant: MakeTenant) -> None:
    ha = make_tenant("ha")
    flagged = {f.path for h in render_tenant(ha).hosts for f in h.files if f.secret}
    assert "/etc/omnileads/postgresql/pgpass" in flagged and "/etc/omnileads/keepalived.conf" in flagged


SECRET = "s3c'r\"et $pw/+=&ü"


@pytest.mark.parametrize("form", [
    SECRET,
    quote(SECRET, safe=""),
    json.dumps(SECRET)[1:-1],
    json.dumps(SECRET, ensure_ascii=False)[1:-1],
    shlex.quote(SECRET),
])
def test_redaction_catches_the_encoded_forms(form: str) -> None:
    out = Redactor([SECRET])(f"before {form} after")
    assert out == "before *** after"


@pytest.mark.parametrize("shift", [0, 1, 2, 3, 4])
def test_redaction_catches_the_secret_inside_a_base64_blob(shift: int) -> None:
    blob = base64.b64encode(b"x" * shift + f"PASSWORD={SECRET}\n".encode() + b"tail of the file").decode()
    out = Redactor([SECRET])(blob)
    assert "***" in out
    # what is left cannot give the secret back
    kept = [p for p in out.split("***") if p]
    for part in kept:
        padded = part + "=" * (-len(part) % 4)
        with contextlib.suppress(ValueError):
            assert SECRET.encode() not in base64.b64decode(padded)


def test_the_check_diff_of_the_url_encoded_password_is_masked(make_tenant: MakeTenant) -> None:
    """The host module's `--check` diff of the exporter's env file: keys only, as for any secret file."""
    from tests.unit.apply.test_engine_plan import host_module

    password = "pa ss%word/x@y"
    tenant = make_tenant("aio", vars={"postgres_password": password})
    f = render_tenant(tenant).host("omnileads_aio").file(DSN_ENV)
    diff = host_module().masked_diff(f.path, b"DATA_SOURCE_NAME=postgresql://old\n", f.content, f.secret)
    assert diff == "~ DATA_SOURCE_NAME=*** (value changed)"
    assert quote(password, safe="") not in diff


def test_plan_with_a_common_word_as_password_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from omldeploy.cli.main import main

    root = tmp_path / "instances"
    assert main(["--instances", str(root), "tenant", "new", "acme", "--layout", "aio"]) == 0
    inv = root / "acme/inventory.yml"
    inv.write_text(re.sub(r"(?m)^(\s*postgres_password:).*$", r"\1 network", inv.read_text()))
    assert main(["--instances", str(root), "plan", "--tenant", "acme"]) == 0  # was 70 (RenderError)
    assert "internal error" not in capsys.readouterr().err
