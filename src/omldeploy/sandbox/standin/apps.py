"""Stand-ins for the OMniLeads application images and for Loki/Promtail.

Each listens where the real program listens, checks its dependencies with the values from its
environment (see checks.py), answers GET /health with JSON on its main port, and records the
management commands tests want to assert (manage.py, asterisk -rx).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from .checks import Health, probe_table, wait_required
from .common import exit_on_term, fail, image_name, log, serve_http, set_role, sleep_forever

MANAGE_LOG = Path(os.environ.get("SANDBOX_MANAGE_LOG", "/opt/omnileads/static/sandbox/manage.log"))
ASTERISK_CLI_LOG = Path(os.environ.get("SANDBOX_ASTERISK_LOG", "/var/log/asterisk/sandbox-cli.log"))
CUSTOM_DIR = Path("/etc/asterisk/custom")


def _append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(entry) + "\n")


def _tail(path: Path, n: int = 50) -> list[Any]:
    try:
        lines = path.read_text().splitlines()[-n:]
    except OSError:
        return []
    return [json.loads(x) for x in lines if x.strip()]


def record_manage(argv: list[str]) -> int:
    """`manage.py ...`: append the invocation to the log in the django_static volume, exit 0."""
    set_role("manage")
    entry = {"argv": argv, "time": time.time(), "image": image_name()}
    _append(MANAGE_LOG, entry)
    log(f"recorded manage.py {' '.join(argv)} in {MANAGE_LOG}")
    return 0


def _run_service(role: str, port: int, required: tuple[str, ...], *, bind: str = "0.0.0.0",
                 extra: Any = None, ssl_context: ssl.SSLContext | None = None,
                 routes: dict[str, Any] | None = None) -> int:
    exit_on_term()
    if os.environ.get("SANDBOX_UNHEALTHY", "") == "start":
        return fail("SANDBOX_UNHEALTHY=start: refusing to start (deliberately broken image)")
    table = probe_table(required)
    problem = wait_required(table)
    if problem is not None:
        return fail(problem)
    health = Health(role, table, extra)
    all_routes: dict[str, Any] = {
        "/health": health,
        "/": lambda: (200, f"OMniLeads {role} stand-in (sandbox test image {image_name()})\n"),
    }
    all_routes.update(routes or {})
    try:
        serve_http(bind, port, all_routes, ssl_context=ssl_context)
    except OSError as exc:
        return fail(f"cannot listen on {bind}:{port}: {exc}")
    log(f"{role} stand-in listening on {bind}:{port} ({'https' if ssl_context else 'http'}), /health ready")
    sleep_forever()
    return 0


def omlapp(args: list[str]) -> int:
    """omnileads/omlapp: uwsgi, daphne or cron by command (HEAD) or by env (seed)."""
    first = os.path.basename(args[0]) if args else ""
    if first in ("manage.py", "python", "python3") or first.endswith("manage.py"):
        rest = args[1:]
        if first.startswith("python") and rest and rest[0].endswith("manage.py"):
            rest = rest[1:]
        return record_manage(rest)
    if first in ("django_commands.sh", "django_migrations.sh"):
        set_role("omlapp-oneshot")
        table = probe_table(("postgres",))
        problem = wait_required(table)
        if problem is not None:
            return fail(problem)
        return record_manage([first])
    daphne = os.environ.get("DAPHNE_ENABLE", "").lower() == "true"
    cron = os.environ.get("CRON_ENABLE", "").lower() == "true"
    if first == "init_daphne.sh" or (not first and daphne):
        role, port = "daphne", int(os.environ.get("DAPHNE_PORT") or 8098)
    elif first == "docker-entrypoint.sh" or (not first and cron):
        role, port = "cron", int(os.environ.get("UWSGI_PORT") or 8097)
    elif first in ("", "init_uwsgi.sh"):
        role, port = "uwsgi", int(os.environ.get("UWSGI_PORT") or 8099)
    else:
        set_role("omlapp")
        return fail(f"unknown omlapp command {args!r}")
    set_role(role)
    required: tuple[str, ...] = ("postgres", "redis", "s3") if role == "cron" else ("postgres", "redis")
    if os.environ.get("S3_ENDPOINT_AWS") is not None or os.environ.get("CALLREC_DEVICE") == "s3-aws":
        required = tuple(r for r in required if r != "s3")

    def extra() -> dict[str, Any]:
        return {"manage_commands": _tail(MANAGE_LOG), "port": port}

    return _run_service(role, port, required, extra=extra)


def websockets(_args: list[str]) -> int:
    set_role("websockets")
    bind = os.environ.get("BIND_ADDRESS", "0.0.0.0:8000")
    host, _, port = bind.rpartition(":")
    return _run_service("websockets", int(port or 8000), ("redis",), bind=host or "0.0.0.0")


def redis2postgres(_args: list[str]) -> int:
    set_role("redis2pgsql")
    return _run_service("redis2postgres", int(os.environ.get("SANDBOX_HEALTH_PORT") or 8096),
                        ("postgres", "redis"))


def _tls_context(role: str) -> ssl.SSLContext | None:
    certs = Path(os.environ.get("KAMAILIO_CERTS_LOCATION") or "/etc/omnileads/certs")
    cert, key = certs / "cert.pem", certs / "key.pem"
    if not (cert.exists() and key.exists()):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def kamailio(_args: list[str]) -> int:
    """TLS (WSS) on 14443 with the certs from KAMAILIO_CERTS_LOCATION; needs Redis."""
    set_role("kamailio")
    try:
        ctx = _tls_context("kamailio")
    except (OSError, ssl.SSLError) as exc:
        return fail(f"cannot load cert.pem/key.pem: {exc}")
    if ctx is None:
        return fail("cert.pem and key.pem not found in KAMAILIO_CERTS_LOCATION "
                    f"({os.environ.get('KAMAILIO_CERTS_LOCATION') or '/etc/omnileads/certs'})")

    def extra() -> dict[str, Any]:
        return {"rtpengine": _rtpengine_ping(os.environ.get("RTPENGINE_HOSTNAME", "")),
                "asterisk_hostname": os.environ.get("ASTERISK_HOSTNAME", "")}

    return _run_service("kamailio", 14443, ("redis",), extra=extra, ssl_context=ctx)


def _rtpengine_ping(host: str) -> str:
    if not host:
        return "RTPENGINE_HOSTNAME not set"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(b"sbx1 d7:command4:pinge", (host, 22222))
            data = s.recv(200)
        return "pong" if b"pong" in data else f"unexpected {data!r}"
    except OSError as exc:
        return f"no answer: {exc}"


def rtpengine(_args: list[str]) -> int:
    """ng control protocol `ping` on 22222/udp; HTTP /health on 22222/tcp."""
    set_role("rtpengine")
    exit_on_term()
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind(("0.0.0.0", 22222))
    except OSError as exc:
        return fail(f"cannot bind 22222/udp: {exc}")
    pings = {"count": 0}

    def loop() -> None:
        while True:
            data, peer = udp.recvfrom(4096)
            cookie, _, msg = data.partition(b" ")
            pings["count"] += 1
            reply = b"d6:result4:ponge" if b"ping" in msg else b"d6:result2:oke"
            udp.sendto(cookie + b" " + reply, peer)

    threading.Thread(target=loop, daemon=True).start()
    return _run_service("rtpengine", 22222, (), extra=lambda: {"ng_pings": pings["count"]})


def _custom_files() -> list[dict[str, Any]]:
    if not CUSTOM_DIR.is_dir():
        return []
    return [{"name": p.name, "size": p.stat().st_size} for p in sorted(CUSTOM_DIR.iterdir()) if p.is_file()]


def asterisk(args: list[str]) -> int:
    """Daemon (AMI on 5038, metrics+health on 7088) or `asterisk -rx 'CMD'` (recorded)."""
    set_role("asterisk")
    if any(a in ("-r", "-rx", "-x", "-R") for a in args) or any(a.startswith("-rx") for a in args):
        cmd = args[-1] if args else ""
        _append(ASTERISK_CLI_LOG, {"command": cmd, "time": time.time()})
        print("Asterisk 18.0.0 (sandbox stand-in): " + (cmd or "connected"))
        return 0
    if os.environ.get("SANDBOX_UNHEALTHY", "") == "start":
        return fail("SANDBOX_UNHEALTHY=start: refusing to start (deliberately broken image)")
    threading.Thread(target=_ami_server, daemon=True).start()
    started = time.monotonic()

    def metrics() -> tuple[int, Any]:
        # the names and types of Asterisk's res_prometheus (core, channel and call providers)
        up = int(time.monotonic() - started)
        return 200, ("# sandbox asterisk stand-in\n# TYPE asterisk_core_uptime_seconds counter\n"
                     f"asterisk_core_uptime_seconds {up}\n# TYPE asterisk_core_last_reload_seconds gauge\n"
                     f"asterisk_core_last_reload_seconds {up}\n# TYPE asterisk_channels_count gauge\n"
                     f"asterisk_channels_count {_channels()}\n# TYPE asterisk_calls_count gauge\n"
                     f"asterisk_calls_count {_channels() // 2}\n")

    def extra() -> dict[str, Any]:
        return {"custom_files": _custom_files(), "cli_commands": _tail(ASTERISK_CLI_LOG)}

    required = ("postgres", "s3") if os.environ.get("S3_ENDPOINT") else ("postgres",)
    return _run_service("asterisk", 7088, required, extra=extra, routes={"/metrics": metrics})


#: how many channels the stand-in says are up (tests write it on the host, in the asterisk_logs volume);
#: missing or unreadable: none
CHANNELS_FILE = Path("/var/log/asterisk/sandbox-channels")


def _channels() -> int:
    try:
        return max(0, int(CHANNELS_FILE.read_text().strip() or "0"))
    except (OSError, ValueError):
        return 0


def _ami_server() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind(("0.0.0.0", 5038))
    except OSError as exc:
        log(f"AMI cannot listen on 5038: {exc}")
        return
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_ami_session, args=(conn,), daemon=True).start()


def _ami_session(conn: socket.socket) -> None:
    user, password = os.environ.get("AMI_USER", ""), os.environ.get("AMI_PASSWORD", "")
    authed = False
    with conn:
        conn.sendall(b"Asterisk Call Manager/5.0.1\r\n")
        buf = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
            while b"\r\n\r\n" in buf:
                block, buf = buf.split(b"\r\n\r\n", 1)
                fields = {}
                for line in block.decode(errors="replace").split("\r\n"):
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.strip()
                action = fields.get("action", "").lower()
                aid = f"ActionID: {fields['actionid']}\r\n" if "actionid" in fields else ""
                if action == "login":
                    authed = (bool(user) and fields.get("username") == user
                              and fields.get("secret") == password)
                    msg = "Success\r\nMessage: Authentication accepted" if authed else \
                        "Error\r\nMessage: Authentication failed"
                    conn.sendall(f"Response: {msg}\r\n{aid}\r\n".encode())
                elif action == "logoff":
                    conn.sendall(f"Response: Goodbye\r\n{aid}\r\n".encode())
                    return
                elif not authed:
                    conn.sendall(f"Response: Error\r\n{aid}Message: Permission denied\r\n\r\n".encode())
                elif action == "ping":
                    conn.sendall(f"Response: Success\r\n{aid}Ping: Pong\r\n\r\n".encode())
                elif action == "coreshowchannels":
                    # as Asterisk answers: a list start, one event per channel, a completion with the count
                    n = _channels()
                    _append(ASTERISK_CLI_LOG, {"ami_action": action, "channels": n, "time": time.time()})
                    out = f"Response: Success\r\n{aid}EventList: start\r\nMessage: Channels will follow\r\n\r\n"
                    out += "".join(f"Event: CoreShowChannel\r\n{aid}Channel: PJSIP/sandbox-{i:08x}\r\n"
                                   f"ChannelStateDesc: Up\r\n\r\n" for i in range(n))
                    out += (f"Event: CoreShowChannelsComplete\r\n{aid}EventList: Complete\r\n"
                            f"ListItems: {n}\r\n\r\n")
                    conn.sendall(out.encode())
                else:
                    _append(ASTERISK_CLI_LOG, {"ami_action": action, "fields": fields, "time": time.time()})
                    conn.sendall(f"Response: Success\r\n{aid}Message: recorded by stand-in\r\n\r\n".encode())


# ---------------------------------------------------------------- Loki / Promtail stand-ins

def _config_file(args: list[str], default: str) -> Path:
    for a in args:
        if a.startswith("-config.file="):
            return Path(a.split("=", 1)[1])
    return Path(default)


def loki(args: list[str]) -> int:
    """Accepts pushes on /loki/api/v1/push and answers /ready on 3100 (Loki is not in Debian)."""
    set_role("loki")
    exit_on_term()
    conf = _config_file(args, "/etc/loki/local-config.yaml")
    if any(a.startswith("-config.file=") for a in args) and not conf.exists():
        return fail(f"config file {conf} not found")
    counts = {"pushes": 0, "bytes": 0}

    def push(data: bytes) -> tuple[int, Any]:
        counts["pushes"] += 1
        counts["bytes"] += len(data)
        return 204, b""

    routes: dict[str, Any] = {
        "/ready": lambda: (200, "ready\n"),
        "/health": lambda: (200, {"role": "loki", "image": image_name(), "ok": True, "stand_in": True,
                                  **counts}),
        "/metrics": lambda: (200, f"loki_sandbox_pushes_total {counts['pushes']}\n"),
    }
    try:
        serve_http("0.0.0.0", 3100, routes, post_routes={"/loki/api/v1/push": push})
    except OSError as exc:
        return fail(f"cannot listen on 3100: {exc}")
    log("loki stand-in listening on 3100")
    sleep_forever()
    return 0


def promtail(args: list[str]) -> int:
    """Reads its config (with -config.expand-env) and pushes a heartbeat line to each client URL."""
    set_role("promtail")
    exit_on_term()
    conf = _config_file(args, "/etc/promtail/config.yml")
    try:
        text = conf.read_text()
    except OSError as exc:
        return fail(f"cannot read config {conf}: {exc}")
    if "-config.expand-env=true" in args:
        text = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}",
                      lambda m: os.environ.get(m.group(1), m.group(2) or ""), text)
    urls = re.findall(r"url:\s*['\"]?(https?://[^\s'\"]+)", text)
    state: dict[str, Any] = {"clients": urls, "last": {}}

    def pusher() -> None:
        while True:
            for url in urls:
                body = json.dumps({"streams": [{"stream": {"job": "sandbox-promtail",
                                                           "host": socket.gethostname()},
                                                "values": [[str(time.time_ns()), "sandbox heartbeat"]]}]})
                req = urllib.request.Request(url, data=body.encode(),
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=3) as resp:
                        state["last"][url] = f"HTTP {resp.status}"
                except OSError as exc:
                    state["last"][url] = f"error: {exc}"
            time.sleep(5)

    threading.Thread(target=pusher, daemon=True).start()
    routes: dict[str, Any] = {
        "/ready": lambda: (200, "Ready\n"),
        "/health": lambda: (200, {"role": "promtail", "image": image_name(), "ok": True, "stand_in": True,
                                  **state}),
    }
    try:
        serve_http("0.0.0.0", 9080, routes)
    except OSError as exc:
        return fail(f"cannot listen on 9080: {exc}")
    log(f"promtail stand-in on 9080 pushing to {urls}")
    sleep_forever()
    return 0
