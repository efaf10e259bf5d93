"""The dashboard's pages through Flask's test client, over simulated hosts (a real browser:
tests/integration/test_dashboard_browser.py)."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from omldeploy.apply.engine import RunResult, Step
from omldeploy.cli.main import main
from omldeploy.inventory.model import Tenant
from omldeploy.ops import fleet as fleet_op
from omldeploy.sandbox.simulated import Condition, SimulatedHosts
from omldeploy.state import ledger
from omldeploy.web.app import create_app
from omldeploy.web.snapshot import Fleet
from tests.unit.conftest import MakeTenant

TOKEN = "t0ken-" + "x" * 30


class Rows(HTMLParser):
    """The tenants table: data-tenant -> class of its row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-tenant"):
            self.rows[str(a["data-tenant"])] = str(a.get("class"))


def rows_of(html: str) -> dict[str, str]:
    p = Rows()
    p.feed(html)
    return p.rows


@pytest.fixture
def fleet(make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch) -> tuple[Fleet, dict[str, Tenant]]:
    good = make_tenant("aio", name="good")
    stopped = make_tenant("aio", name="stopped")
    odd = make_tenant("aio", name="odd<i>name")
    timings = {"total": 12.5, "steps": [{"host": "omnileads_aio", "step": "activate", "wall": 12.0,
                                         "rows": [{"phase": "start", "what": "omnileads", "seconds": 9.5}]}]}
    for t in (good, stopped, odd):
        ledger.append(t.folder, ledger.Record(action="install", outcome="ok", started=ledger.now(), duration=12.5,
                                              versions={}, extra={"timings": timings}), redact=lambda s: s)
    ledger.append(good.folder, ledger.Record(action="restore", outcome="ok", started=ledger.now(), duration=3.0,
                                             versions={}), redact=lambda s: s)
    (good.folder.parent / "bad").mkdir()
    (good.folder.parent / "bad" / "inventory.yml").write_text("all:\n  vars: [unclosed\n")
    secret = stopped.settings.text("postgres_password")
    sim = SimulatedHosts({"stopped": Condition(stopped=("redis",))})

    def leaky(t: Tenant, steps: list[Step], timeout: int) -> RunResult:
        res = sim(t, steps, timeout)
        for h in res.hosts.values():  # a unit's health detail quoting a secret must not reach the page
            for u in (h.status or {}).get("units", []):
                u["detail"] = f"auth failed for {t.settings.text('postgres_password')}"
        return res

    monkeypatch.setattr(fleet_op, "real_runner", leaky)
    f = Fleet(good.folder.parent, fleet_op.Options())
    f.survey_once()
    assert secret
    return f, {"good": good, "stopped": stopped, "odd": odd}


def _get(client: FlaskClient, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return resp.get_data(as_text=True)


def test_the_front_page_lists_every_tenant_and_highlights_the_failing_ones(
        fleet: tuple[Fleet, dict[str, Tenant]]) -> None:
    f, tenants = fleet
    client = create_app(f).test_client()
    html = _get(client, "/")
    rows = rows_of(html)
    assert set(rows) == {"bad", "good", "odd<i>name", "stopped"}
    assert "attention" in rows["stopped"] and "health-unhealthy" in rows["stopped"]
    assert "attention" in rows["bad"] and "health-invalid" in rows["bad"]
    assert "odd&lt;i&gt;name" in html and "<i>name" not in html  # escaped
    assert "redis: inactive (dead), should run" in html
    assert "Recent operations" in html and html.count(">install<") == 3
    for t in tenants.values():
        assert t.settings.text("postgres_password") not in html
    only = rows_of(_get(client, "/?state=attention"))
    assert set(only) == {"bad", "stopped", "odd<i>name"}  # good: healthy, backed up, restore proven
    assert "ok" in rows["good"].split()
    assert set(rows_of(_get(client, "/?state=unhealthy"))) == {"stopped"}
    assert set(rows_of(_get(client, "/?state=invalid"))) == {"bad"}
    assert set(rows_of(_get(client, "/?q=goo"))) == {"good"}
    assert set(rows_of(_get(client, "/?state=nonsense"))) == set(rows)  # an unknown filter shows all


def test_the_tenant_page_shows_units_and_operations_with_timing(fleet: tuple[Fleet, dict[str, Tenant]]) -> None:
    f, tenants = fleet
    client = create_app(f).test_client()
    html = _get(client, "/tenant/stopped")
    assert "redis" in html and "inactive" in html and "Needs attention" in html
    assert "where the time went (12.5 s in all" in html and "start 9.5 (omnileads 9.5)" in html
    assert tenants["stopped"].settings.text("postgres_password") not in html and "auth failed for ***" in html
    html = _get(client, "/tenant/good")
    assert "restore" in html and "restore proof: 0.0 days old" in html
    assert _get(client, "/tenant/odd%3Ci%3Ename").count("odd&lt;i&gt;name") >= 1
    for url in ("/tenant/nobody", "/tenant/..%2F..%2Fetc", "/tenant/"):
        assert client.get(url).status_code == 404, url


def test_nothing_can_be_written_and_pages_carry_strict_headers(fleet: tuple[Fleet, dict[str, Tenant]]) -> None:
    f, _ = fleet
    client = create_app(f).test_client()
    for method in (client.post, client.put, client.delete, client.patch):
        assert method("/").status_code == 405
        assert method("/tenant/good").status_code == 405
    resp = client.get("/")
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Cache-Control"] == "no-store"
    assert "<script" not in resp.get_data(as_text=True)
    assert client.get("/static/style.css").status_code == 200


def test_a_token_guards_every_page_but_healthz(fleet: tuple[Fleet, dict[str, Tenant]]) -> None:
    f, _ = fleet
    client = create_app(f, TOKEN).test_client()
    assert client.get("/").status_code == 401
    assert client.get("/tenant/good").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/healthz").get_data(as_text=True) == "ok\n"
    assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    resp = client.get(f"/?state=attention&token={TOKEN}")
    assert resp.status_code == 303 and resp.headers["Location"] == "/?state=attention"  # token out of the URL
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/?state=attention").status_code == 200  # the cookie now carries it


def test_before_the_first_survey_the_page_says_it_is_reading(make_tenant: MakeTenant) -> None:
    t = make_tenant("aio", name="one")
    f = Fleet(t.folder.parent, fleet_op.Options(hosts=False))
    f.progress = (0, 1)
    client = create_app(f).test_client()
    html = _get(client, "/")
    assert "The first read of the fleet is running (0 of 1 tenants)" in html
    assert client.get("/healthz").get_data(as_text=True) == "starting\n"
    f.start()
    try:
        deadline = time.monotonic() + 30
        while f.current().taken is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(rows_of(_get(client, "/"))) == {"one"}
    finally:
        f.stop()


@pytest.mark.parametrize("args, message", [
    (["--listen", "0.0.0.0:8080"], "a token is required"),
    (["--listen", "nonsense"], "is not an address to serve on"),
    (["--listen", "127.0.0.1:99999"], "is not an address to serve on"),
    (["--listen", "example.com:80"], "must be an IP address or localhost"),
])
def test_bad_listen_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                   message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMLDEPLOY_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", "--instances", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_token_file_readable_by_others_or_too_short_is_refused(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0o644)
    assert main(["dashboard", "--instances", str(tmp_path), "--listen", "0.0.0.0:8080", "--token-file",
                 str(path)]) == 2
    assert "is readable by other users" in capsys.readouterr().err
    path.write_text("short")
    path.chmod(0o600)
    assert main(["dashboard", "--instances", str(tmp_path), "--token-file", str(path)]) == 2
    assert "too short" in capsys.readouterr().err
