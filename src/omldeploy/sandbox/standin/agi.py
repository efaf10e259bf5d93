"""Stand-ins for omnileads/fastagi and omnileads/astami, the two Asterisk companions.

fastagi: the real image runs `python /app/fastagi.py`, serving FastAGI on 4573 with PostgreSQL and Redis
from its env. The stand-in refuses any other command, binds FASTAGI_HOSTNAME:4573 (a wrong address fails
at once, as a real bind would), requires PostgreSQL and Redis, answers AGI sessions and records them.
astami: logs in to Asterisk's AMI with AMI_USER/AMI_PASSWORD at ASTERISK_HOSTNAME:5038 (wrong
credentials are fatal at once), requires Redis, and keeps the session alive with Pings.
Both answer GET /health with JSON (fastagi on 8094, astami on 8093; SANDBOX_HEALTH_PORT overrides).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from . import probes
from .apps import _run_service
from .common import fail, log, set_role

AGI_PORT = 4573
_AGI_REQUESTS: list[dict[str, Any]] = []
_SESSION: dict[str, Any] = {"connected": False, "pings": 0, "reconnects": 0, "last_error": ""}


def fastagi(args: list[str]) -> int:
    set_role("fastagi", "python")
    if args and not (os.path.basename(args[0]).startswith("python") and args[1:] == ["/app/fastagi.py"]):
        return fail(f"unknown fastagi command {args!r} (the image runs `python /app/fastagi.py`)")
    bind = os.environ.get("FASTAGI_HOSTNAME", "")
    if not bind:
        return fail("FASTAGI_HOSTNAME is not set (the address FastAGI listens on)")
    try:
        srv = socket.create_server((bind, AGI_PORT), reuse_port=False)
    except OSError as exc:
        return fail(f"cannot listen on FASTAGI_HOSTNAME {bind}:{AGI_PORT}: {exc}")
    threading.Thread(target=_agi_loop, args=(srv,), daemon=True).start()
    log(f"FastAGI listening on {bind}:{AGI_PORT}")

    def extra() -> dict[str, Any]:
        return {"agi_port": AGI_PORT, "agi_requests": _AGI_REQUESTS[-20:]}

    port = int(os.environ.get("SANDBOX_HEALTH_PORT") or 8094)
    return _run_service("fastagi", port, ("postgres", "redis"), extra=extra)


def _agi_loop(srv: socket.socket) -> None:
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=_agi_session, args=(conn, peer), daemon=True).start()


def _agi_session(conn: socket.socket, peer: Any) -> None:
    """Read the AGI environment (agi_* lines up to a blank line), send one VERBOSE, record the request.
    A bare connect-and-close (the tcp health check) records nothing."""
    conn.settimeout(5)
    buf = b""
    with conn:
        try:
            while b"\n\n" not in buf.replace(b"\r\n", b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            env = {}
            for line in buf.decode(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.startswith("agi_"):
                    env[key] = value.strip()
            conn.sendall(b'VERBOSE "omldeploy sandbox fastagi" 1\n')
            reply = conn.recv(256).decode(errors="replace").strip()
        except OSError:
            return
    _AGI_REQUESTS.append({"from": str(peer[0]), "request": env.get("agi_request", ""),
                          "channel": env.get("agi_channel", ""), "reply": reply, "time": time.time()})


def astami(_args: list[str]) -> int:
    set_role("astami", "python")
    first = probes.ami_from_env()
    if not first.ok and first.permanent:
        return fail(f"ami: {first.detail}")
    threading.Thread(target=_keep_session, daemon=True).start()

    def extra() -> dict[str, Any]:
        return {"ami_session": dict(_SESSION)}

    port = int(os.environ.get("SANDBOX_HEALTH_PORT") or 8093)
    return _run_service("astami", port, ("ami", "redis"), extra=extra)


def _keep_session() -> None:
    """One long AMI session with a Ping every 5 s, reconnecting when Asterisk restarts (as astami must)."""
    host = os.environ.get("ASTERISK_HOSTNAME", "")
    port = int(os.environ.get("AMI_PORT") or 5038)
    user, secret = os.environ.get("AMI_USER", ""), os.environ.get("AMI_PASSWORD", "")
    while True:
        sock, result = probes.ami_login(host, port, user, secret)
        if sock is None:
            _SESSION.update(connected=False, last_error=result.detail)
            time.sleep(2)
            continue
        _SESSION.update(connected=True)
        try:
            with sock:
                while True:
                    sock.sendall(b"Action: Ping\r\n\r\n")
                    reply, _ = probes._ami_read(sock, b"")
                    if reply.get("response", "").lower() != "success":
                        raise OSError(f"Ping answered {reply}")
                    _SESSION["pings"] += 1
                    time.sleep(5)
        except OSError as exc:
            log(f"AMI session lost: {exc}; reconnecting")
            _SESSION.update(connected=False, last_error=str(exc))
            _SESSION["reconnects"] += 1
