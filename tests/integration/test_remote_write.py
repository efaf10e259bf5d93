"""`prometheus_remote_write_url`: the rendered prometheus.yml run by the real Prometheus, as user nobody
(as prom/prometheus runs), reading the 0600 password file owned by that user the way the host module
writes it, sends the tenant's samples to a receiver that requires basic auth. Also `promtool check
config` of that file: a remote_write block Prometheus would refuse fails here, not on the hosts.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from omldeploy.inventory import load_tenant
from omldeploy.render.build import render_tenant
from tests.unit.conftest import example

from .conftest import free_port
from .test_rendered_configs import need, run, stop

USER, PASSWORD = "tenant-rw", "rw-Secret-9fQz-pL2m"
NOBODY = 65534


class Receiver(ThreadingHTTPServer):
    """Answers remote-write POSTs: 204 with the right basic auth, 401 otherwise; keeps what it saw."""

    def __init__(self, port: int) -> None:
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        ok = self.headers.get("Authorization") == good
        self.server.seen.append({"path": self.path, "ok": str(ok), "bytes": str(len(body)),
                                 "encoding": self.headers.get("Content-Encoding") or "",
                                 "version": self.headers.get("X-Prometheus-Remote-Write-Version") or ""})
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_prometheus_as_nobody_remote_writes_with_the_password_file(receiver: Receiver, tmp_path: Path) -> None:
    prometheus = need("prometheus", "prometheus")
    promtool = need("promtool", "prometheus")
    if os.geteuid() != 0:
        pytest.skip("runs Prometheus as user nobody (root needed to switch)")
    url = f"http://127.0.0.1:{receiver.server_address[1]}/api/v1/push"
    data = example("aio")
    data["all"]["vars"].update({"prometheus_remote_write_url": url, "prometheus_remote_write_user": USER,
                                "prometheus_remote_write_password": PASSWORD})
    folder = tmp_path / "instances" / "rw"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    bundle = render_tenant(load_tenant(folder, "rw"))
    files = {f.path: f for hb in bundle.hosts for f in hb.files}
    conf, secret = files["/etc/omnileads/prometheus.yml"], files["/etc/omnileads/prometheus/remote_write.pass"]
    # as the host module writes it and the container sees it: 0600, owned by the image's user
    work = Path(tempfile.mkdtemp(prefix="omldeploy-it-rw-"))
    try:
        work.chmod(0o755)
        pw = work / "remote_write.pass"
        pw.write_bytes(secret.content)
        os.chown(pw, secret.owner or 0, secret.owner or 0)
        pw.chmod(secret.mode)
        text = conf.content.decode().replace("/etc/prometheus/remote_write.pass", str(pw))
        # only the remote write is under test here: scrape Prometheus itself, on a free loopback port
        parsed = yaml.safe_load(text)
        listen = f"127.0.0.1:{free_port()}"
        parsed["scrape_configs"] = [{"job_name": "prometheus", "static_configs": [{"targets": [listen]}]}]
        parsed["global"]["scrape_interval"] = "1s"
        parsed["remote_write"][0]["queue_config"] = {"batch_send_deadline": "1s"}
        cfg = work / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(parsed))
        cfg.chmod(0o644)
        # the file as rendered passes promtool (path mapped to the on-disk password file)
        (work / "rendered.yml").write_text(text)
        check = run([promtool, "check", "config", str(work / "rendered.yml")])
        assert check.returncode == 0 and "SUCCESS" in check.stdout + check.stderr, check.stdout + check.stderr
        tsdb = work / "tsdb"
        tsdb.mkdir()
        os.chown(tsdb, NOBODY, NOBODY)
        proc = subprocess.Popen(
            [shutil.which("setpriv") or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tsdb}", f"--web.listen-address={listen}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not any(s["ok"] == "True" for s in receiver.seen):
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.5)
        finally:
            stop(proc)
            log = proc.stdout.read().decode() if proc.stdout else ""
        good = [s for s in receiver.seen if s["ok"] == "True"]
        assert good, (receiver.seen, log[-3000:])
        assert all(s["ok"] == "True" for s in receiver.seen), receiver.seen  # never without the password
        assert good[0]["path"] == "/api/v1/push" and good[0]["encoding"] == "snappy"
        assert good[0]["version"].startswith("0.1") and int(good[0]["bytes"]) > 0
        assert PASSWORD not in log
    finally:
        shutil.rmtree(work, ignore_errors=True)
