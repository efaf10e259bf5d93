"""Logging, process naming, signals and the small HTTP server the stand-ins share."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

ROLE = "standin"

Route = Callable[[], tuple[int, Any]]


def log(message: str) -> None:
    """One line on stdout (the journal of the unit that runs the container)."""
    print(f"[sandbox-{ROLE}] {message}", flush=True)


def fail(message: str, code: int = 1) -> int:
    """Log a fatal problem the way an operator should see it, and return the exit code."""
    print(f"[sandbox-{ROLE}] FATAL: {message}", file=sys.stderr, flush=True)
    return code


def set_role(role: str, comm: str | None = None) -> None:
    """Remember the role for log lines and name the process like the real program (for pgrep/pidof)."""
    global ROLE
    ROLE = role
    name = (comm or role).encode()[:15]
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on", "require")


def image_name() -> str:
    return os.environ.get("SANDBOX_IMAGE", "unknown")


def exit_on_term() -> None:
    """As PID 1 in a container Python ignores SIGTERM by default; make stop requests end us."""

    def _bye(signum: int, _frame: object) -> None:
        log(f"signal {signum}: stopping")
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, _bye)
    signal.signal(signal.SIGINT, _bye)


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Route]] = {}
    post_routes: ClassVar[dict[str, Callable[[bytes], tuple[int, Any]]]] = {}

    def _send(self, status: int, body: Any) -> None:
        raw = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body, indent=1).encode())
        ctype = "application/json" if not isinstance(body, (bytes, str)) else "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        route = self.routes.get(path) or self.routes.get("*")
        if route is None:
            self._send(404, {"error": "not found", "path": path})
            return
        status, body = route()
        self._send(status, body)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        route = self.post_routes.get(path)
        if route is None:
            self._send(404, {"error": "not found", "path": path})
            return
        status, body = route(data)
        self._send(status, body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_http(host: str, port: int, routes: dict[str, Route],
               post_routes: dict[str, Callable[[bytes], tuple[int, Any]]] | None = None,
               ssl_context: Any = None) -> ThreadingHTTPServer:
    """Start a threaded HTTP(S) server in the background; raises OSError if the port is taken."""
    handler = type("Handler", (_Handler,), {"routes": routes, "post_routes": post_routes or {}})
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sleep_forever() -> None:
    while True:
        time.sleep(3600)
