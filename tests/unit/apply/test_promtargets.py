"""`omldeploy status` reads the tenant Prometheus's view of its targets (module_utils/omldeploy_promtargets.py)
and prints it beside unit health: all up, some down (named with Prometheus's error), not yet scraped,
or Prometheus not answering like Prometheus."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from omldeploy.cli.actions import _say_targets
from omldeploy.cli.output import Console
from tests.hostmodules import module_utils

module_utils("omldeploy_promtargets")
from ansible.module_utils.omldeploy_promtargets import targets  # type: ignore[import-not-found]  # noqa: E402


def target(host: str, component: str, health: str, error: str = "") -> dict[str, Any]:
    return {"labels": {"host": host, "component": component, "tenant": "t1"}, "health": health, "lastError": error}


class Fake(ThreadingHTTPServer):
    reply: bytes = b""
    paths: list[str]


@pytest.fixture
def prometheus() -> Iterator[Fake]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.paths.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(server.reply)

        def log_message(self, *a: object) -> None:
            pass

    server = Fake(("127.0.0.1", 0), Handler)
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_up_down_and_not_yet_scraped_are_told_apart(prometheus: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    active = [target("aio", "host", "up"), target("aio", "redis", "down", 'Get "http://10.0.0.2:9121": refused'),
              target("aio", "postgres", "unknown"), target("aio", "asterisk", "up")]
    prometheus.reply = json.dumps({"status": "success", "data": {"activeTargets": active}}).encode()
    port = prometheus.server_address[1]
    got = targets("127.0.0.1", port)
    assert prometheus.paths == ["/api/v1/targets?state=active"]
    assert got == {"address": f"127.0.0.1:{port}", "up": 2, "unknown": 1,
                   "down": [{"host": "aio", "component": "redis", "error": 'Get "http://10.0.0.2:9121": refused'}]}
    _say_targets(Console(), got)
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"prometheus at 127.0.0.1:{port}: 2 of 4 targets up, 1 not scraped yet; down: aio redis (Get" in text


def test_all_up_is_one_quiet_line(prometheus: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    prometheus.reply = json.dumps({"data": {"activeTargets": [target("a", "host", "up")] * 3}}).encode()
    _say_targets(Console(), targets("127.0.0.1", prometheus.server_address[1]))
    assert "3 of 3 targets up" in capsys.readouterr().out


@pytest.mark.parametrize("reply", [b"<html>not prometheus</html>", b'{"data": {}}', b"[1, 2]"])
def test_something_else_on_the_port_is_said_not_guessed(prometheus: Fake, reply: bytes,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    prometheus.reply = reply
    got = targets("127.0.0.1", prometheus.server_address[1])
    assert got["error"] == "not a Prometheus targets reply"
    _say_targets(Console(), got)
    assert "targets not readable: not a Prometheus targets reply" in capsys.readouterr().err


def test_nobody_listening_is_an_error_not_a_crash() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = targets("127.0.0.1", port, timeout=2)
    assert set(got) == {"address", "error"} and got["error"]
