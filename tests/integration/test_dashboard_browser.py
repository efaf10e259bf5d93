"""The fleet dashboard in a real browser: headless Chromium (Debian's package) loads the page served by
`omldeploy dashboard`'s own server (waitress) over loopback; the DOM it built is checked (every tenant
listed, the failing ones highlighted, a tenant's page reachable by its link) and a screenshot of each page
is kept as a test artifact (`$OMLDEPLOY_TEST_ARTIFACTS`, default test-artifacts/ in the checkout).

Hosts are simulated (omldeploy/sandbox/simulated.py): the page is what is under test here; the survey on
real hosts is tests/e2e/test_fleet.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from waitress import create_server  # type: ignore[import-untyped]

from omldeploy.cli.tenants import example_text, with_random_secrets
from omldeploy.ops import fleet as fleet_op
from omldeploy.sandbox.simulated import Condition, SimulatedHosts
from omldeploy.state import ledger
from omldeploy.web.app import create_app
from omldeploy.web.snapshot import Fleet

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(os.environ.get("OMLDEPLOY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
TOKEN = "dashboard-token-" + "a1b2" * 8

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/e2e-setup.sh installs it)")


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-tenant"):
            self.rows[str(a["data-tenant"])] = str(a.get("class"))
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def browse(url: str, shot: Path | None = None) -> Dom:
    """The DOM Chromium built for `url` (after parsing, as a user's browser would have it), and with `shot`
    a screenshot."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        common = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", "--window-size=1400,900"]
        dump = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
        assert dump.returncode == 0 and "<html" in dump.stdout, dump.stderr[-2000:]
        if shot is None:
            dom = Dom()
            dom.feed(dump.stdout)
            return dom
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.unlink(missing_ok=True)
        taken = subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=180)
        assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = Dom()
    dom.feed(dump.stdout)
    return dom


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "instances"
    for i, name in enumerate(("acme", "globex", "initech", "umbrella")):
        data = yaml.safe_load(with_random_secrets(example_text("aio")))
        for hv in data["all"]["hosts"].values():
            hv["ansible_host"] = hv["omni_ip_lan"] = f"10.30.0.{10 + i}"
        (root / name).mkdir(parents=True)
        (root / name / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        (root / name / "inventory.yml").chmod(0o600)
        ledger.append(root / name, ledger.Record(action="install", outcome="ok", started=ledger.now(), duration=40.0,
                                                 versions={}), redact=lambda s: s)
        ledger.append(root / name, ledger.Record(action="drill-restore", outcome="ok", started=ledger.now(),
                                                 duration=9.0, versions={}), redact=lambda s: s)
    ledger.append(root / "initech", ledger.Record(action="upgrade", outcome="failed", started=ledger.now(),
                                                  duration=80.0, versions={}), redact=lambda s: s)
    monkeypatch.setattr(fleet_op, "real_runner", SimulatedHosts({"globex": Condition(stopped=("omnileads",))}))
    fleet = Fleet(root, fleet_op.Options(parallel=4))
    fleet.survey_once()
    server = create_server(create_app(fleet, TOKEN), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", root
    finally:
        server.close()


def test_chromium_shows_every_tenant_and_highlights_the_failing_ones(served: tuple[str, Path]) -> None:
    base, root = served
    denied = browse(f"{base}/")
    assert denied.rows == {} and "a token is required" in "".join(denied.text)

    dom = browse(f"{base}/?token={TOKEN}", ARTIFACTS / "dashboard.png")  # redirected, the cookie set
    assert set(dom.rows) == {"acme", "globex", "initech", "umbrella"}
    assert "attention" in dom.rows["globex"].split() and "health-unhealthy" in dom.rows["globex"]
    assert "attention" in dom.rows["initech"].split()  # its last operation failed
    assert "ok" in dom.rows["acme"].split() and "ok" in dom.rows["umbrella"].split()
    text = " ".join(dom.text)
    assert "omnileads: inactive (dead), should run" in text and "last operation failed: upgrade" in text
    assert "/tenant/globex" in dom.links
    for folder in root.iterdir():
        inv = yaml.safe_load((folder / "inventory.yml").read_text())
        assert inv["all"]["vars"]["postgres_password"] not in text

    page = browse(f"{base}/tenant/globex?token={TOKEN}", ARTIFACTS / "dashboard-tenant.png")
    words = " ".join(page.text)
    assert "Hosts and units" in words and "omnileads" in words and "drill-restore" in words
    filtered = browse(f"{base}/?state=attention&token={TOKEN}")
    assert set(filtered.rows) == {"globex", "initech"}
