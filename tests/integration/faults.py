"""A fault-injecting HTTP proxy on loopback, in front of the real S3 store (weed).

Requests are forwarded unchanged (the Host header too, so SigV4 signatures still verify upstream),
except those a rule picks: answered with an S3 error document (500 InternalError, 503 SlowDown, 400
BadDigest...), or a GET whose body is cut off halfway (the connection is closed mid-body). Every
request is recorded, so tests can prove what was retried and what was not.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    status: int
    injected: bool


#: a rule sees (n-th request overall, method, path) and returns (status, code) to inject, or None
Rule = Callable[[int, str, str], tuple[int, str] | None]


@dataclass
class Faults:
    upstream: str
    rule: Rule | None = None
    cut_get: Callable[[int, str, str], bool] | None = None  # cut this GET's body halfway
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""

    def injected(self) -> list[Seen]:
        return [s for s in self.seen if s.injected]


def every_kth_put(k: int, status: int = 500, code: str = "InternalError") -> Rule:
    count = {"put": 0}

    def rule(n: int, method: str, path: str) -> tuple[int, str] | None:
        if method != "PUT":
            return None
        count["put"] += 1
        return (status, code) if count["put"] % k == 0 else None
    return rule


def first_n(n_fail: int, status: int = 500, code: str = "InternalError") -> Rule:
    return lambda n, method, path: (status, code) if n <= n_fail else None


def both(*rules: Rule) -> Rule:
    def rule(n: int, method: str, path: str) -> tuple[int, str] | None:
        for r in rules:
            hit = r(n, method, path)
            if hit:
                return hit
        return None
    return rule


def _error_xml(code: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by the test proxy</Message></Error>").encode()


@contextmanager
def proxy(upstream: str, rule: Rule | None = None,
          cut_get: Callable[[int, str, str], bool] | None = None) -> Iterator[Faults]:
    faults = Faults(upstream, rule, cut_get)
    up = urllib.parse.urlsplit(upstream)
    counter = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with faults.lock:
                counter["n"] += 1
                n = counter["n"]
            hit = faults.rule(n, self.command, self.path) if faults.rule else None
            if hit:
                data = _error_xml(hit[1])
                faults.seen.append(Seen(self.command, self.path, hit[0], True))  # before the client hears it
                self.send_response(hit[0])
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                cut = (self.command == "GET" and resp.status == 200 and len(data) > 1024
                       and faults.cut_get is not None and faults.cut_get(n, self.command, self.path))
                faults.seen.append(Seen(self.command, self.path, resp.status, bool(cut)))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", resp.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
            finally:
                conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    faults.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield faults
    finally:
        server.shutdown()
        server.server_close()
