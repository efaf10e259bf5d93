"""Real connections to PostgreSQL, Redis and S3 with the values a component was given.

Each probe returns a Result: ok, a one-line detail, and whether the failure is permanent (wrong
password, unknown bucket: retrying cannot help) or may pass later (service still starting).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from .common import env_true


@dataclass
class Result:
    ok: bool
    detail: str
    permanent: bool = False
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- PostgreSQL (libpq via psql)

def postgres() -> Result:
    """`select` through psql, which reads PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE itself."""
    missing = [v for v in ("PGHOST", "PGUSER", "PGDATABASE") if not os.environ.get(v)]
    if missing:
        return Result(False, f"{', '.join(missing)} not set", permanent=True)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "3"}
    if env_true("PGSSL") and "PGSSLMODE" not in os.environ:
        env["PGSSLMODE"] = "require"
    try:
        proc = subprocess.run(
            ["psql", "-XtA", "-F", " ", "-c",
             "select current_user, current_database(), "
             "coalesce((select ssl::text from pg_stat_ssl where pid = pg_backend_pid()), 'false')"],
            capture_output=True, text=True, env=env, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Result(False, f"psql did not run: {exc}")
    target = f"{os.environ.get('PGUSER')}@{os.environ.get('PGHOST')}:{os.environ.get('PGPORT', '5432')}" \
             f"/{os.environ.get('PGDATABASE')}"
    if proc.returncode == 0:
        user, db, ssl_on = [*proc.stdout.split(), "", "", ""][:3]
        return Result(True, f"connected to {target} as {user} (db {db}, ssl {ssl_on})")
    err = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    permanent = any(s in err for s in ("password authentication failed", "does not exist",
                                       "no pg_hba.conf entry", "SSL off", "server does not support SSL"))
    return Result(False, f"{target}: {err}", permanent=permanent)


# ---------------------------------------------------------------- Redis (RESP over a socket)

def _resp(sock: socket.socket, *args: str) -> str:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    sock.sendall(payload.encode())
    data = sock.recv(65536).decode(errors="replace")
    return data


def redis_ping(host: str, port: int) -> Result:
    password = os.environ.get("REDIS_PASSWORD", "")
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            if password and password != "null":
                auth = _resp(sock, "AUTH", password)
                if not auth.startswith("+OK"):
                    return Result(False, f"redis {host}:{port} refused AUTH: {auth.strip()}", permanent=True)
            reply = _resp(sock, "PING")
    except OSError as exc:
        return Result(False, f"redis {host}:{port}: {exc}")
    if reply.startswith("+PONG"):
        return Result(True, f"redis {host}:{port} answered PONG")
    permanent = "NOAUTH" in reply or "WRONGPASS" in reply
    return Result(False, f"redis {host}:{port} answered {reply.strip()!r}", permanent=permanent)


def sentinel_master(hosts: list[str], name: str) -> tuple[str, int] | None:
    """The master the first answering Sentinel names; with REDIS_PASSWORD it AUTHs first, as the app
    does with Sentinels that require a password."""
    password = os.environ.get("REDIS_PASSWORD", "")
    for h in hosts:
        host, _, port = h.partition(":")
        try:
            with socket.create_connection((host, int(port or 26379)), timeout=3) as sock:
                if password and password != "null" and not _resp(sock, "AUTH", password).startswith("+OK"):
                    continue
                reply = _resp(sock, "SENTINEL", "get-master-addr-by-name", name)
        except OSError:
            continue
        parts = [p for p in reply.split("\r\n") if p and not p.startswith(("*", "$"))]
        if len(parts) == 2:
            return parts[0], int(parts[1])
    return None


def redis_from_env() -> Result:
    """Redis from REDIS_HOST (redis://h[:p] or redis+sentinel://master/h1,h2) or REDIS_HOSTNAME."""
    url = os.environ.get("REDIS_HOST", "")
    if url.startswith("redis+sentinel://"):
        rest = url[len("redis+sentinel://"):]
        name, _, hosts = rest.partition("/")
        found = sentinel_master([h for h in hosts.split(",") if h], name or "master")
        if found is None:
            return Result(False, f"no sentinel in {hosts!r} knows master {name!r}")
        return redis_ping(*found)
    if url.startswith("redis://"):
        parsed = urllib.parse.urlparse(url)
        return redis_ping(parsed.hostname or "localhost", parsed.port or 6379)
    host = os.environ.get("REDIS_HOSTNAME", "")
    if not host:
        return Result(False, "neither REDIS_HOSTNAME nor REDIS_HOST is set", permanent=True)
    return redis_ping(host, int(os.environ.get("REDIS_PORT", "6379") or 6379))


# ---------------------------------------------------------------- S3 (SigV4, path style)

def s3_endpoint_from_env() -> str:
    """The endpoint a component uses server-side: S3_ENDPOINT_MINIO if given, else S3_ENDPOINT."""
    minio = os.environ.get("S3_ENDPOINT_MINIO", "")
    if minio:
        if "://" not in minio:
            minio = "http://" + minio + ("" if ":" in minio else ":9000")
        return minio
    return os.environ.get("S3_ENDPOINT", "")


def s3_request(endpoint: str, bucket: str, access_key: str, secret_key: str, region: str,
               verify: bool) -> tuple[int, str]:
    """Signed GET /<bucket>?list-type=2&max-keys=1; returns (HTTP status, body or error)."""
    parsed = urllib.parse.urlparse(endpoint)
    host = parsed.netloc
    path = (parsed.path.rstrip("/") + "/" + bucket) or "/"
    query = {"list-type": "2", "max-keys": "1"}
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    cq = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                  for k, v in sorted(query.items()))
    headers = f"host:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n"
    signed = "host;x-amz-content-sha256;x-amz-date"
    creq = "\n".join(["GET", urllib.parse.quote(path, safe="/-_.~"), cq, headers, signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{parsed.scheme}://{host}{path}?{cq}", headers={
        "x-amz-date": amz_date, "x-amz-content-sha256": payload,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
                         f"Signature={sig}"})
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            return int(resp.status), resp.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")


def s3_from_env(endpoint: str) -> Result:
    """List the component's bucket with its credentials."""
    if not endpoint:
        return Result(False, "no S3 endpoint in the environment", skipped=True)
    ak = os.environ.get("AWS_ACCESS_KEY_ID", "")
    sk = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    bucket = os.environ.get("S3_BUCKET_NAME", "")
    if not (ak and sk and bucket):
        return Result(False, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or S3_BUCKET_NAME not set",
                      permanent=True)
    region = os.environ.get("S3_REGION_NAME") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    verify = os.environ.get("CALLREC_DEVICE", "") != "s3-no-check-cert"
    try:
        status, body = s3_request(endpoint, bucket, ak, sk, region, verify)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Result(False, f"S3 {endpoint}: {exc}")
    if status == 200:
        return Result(True, f"S3 {endpoint} bucket {bucket} listed with key {ak}")
    code = body.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in body else body[:80]
    return Result(False, f"S3 {endpoint} bucket {bucket}: HTTP {status} {code}",
                  permanent=status in (403, 404))


# ---------------------------------------------------------------- Asterisk Manager (AMI)

def _ami_read(sock: socket.socket, buf: bytes) -> tuple[dict[str, str], bytes]:
    """One AMI message (header lines up to a blank line) -> lower-cased fields, rest of the buffer."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed by the AMI server")
        buf += chunk
    block, rest = buf.split(b"\r\n\r\n", 1)
    fields = {}
    for line in block.decode(errors="replace").split("\r\n"):
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    return fields, rest


def ami_login(host: str, port: int, user: str, secret: str) -> tuple[socket.socket | None, Result]:
    """Connect, check the banner and log in; on success the open socket is returned with the result."""
    target = f"AMI {host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=3)
    except OSError as exc:
        return None, Result(False, f"{target}: {exc}")
    try:
        banner = sock.recv(256).decode(errors="replace")
        if not banner.startswith("Asterisk Call Manager"):
            sock.close()
            return None, Result(False, f"{target} is not an Asterisk Manager (banner {banner.strip()!r})",
                                permanent=True)
        sock.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
        reply, _ = _ami_read(sock, banner.split("\r\n", 1)[1].encode() if "\r\n" in banner else b"")
    except OSError as exc:
        sock.close()
        return None, Result(False, f"{target}: {exc}")
    if reply.get("response", "").lower() != "success":
        sock.close()
        return None, Result(False, f"{target} refused login of {user!r}: {reply.get('message', reply)}",
                            permanent=True)
    return sock, Result(True, f"{target} accepted login of {user!r}")


def ami_from_env() -> Result:
    """Log in with AMI_USER/AMI_PASSWORD at ASTERISK_HOSTNAME (AMI_PORT, default 5038), Ping, Logoff."""
    host, user = os.environ.get("ASTERISK_HOSTNAME", ""), os.environ.get("AMI_USER", "")
    secret = os.environ.get("AMI_PASSWORD", "")
    missing = [n for n, v in (("ASTERISK_HOSTNAME", host), ("AMI_USER", user), ("AMI_PASSWORD", secret)) if not v]
    if missing:
        return Result(False, f"{', '.join(missing)} not set", permanent=True)
    sock, result = ami_login(host, int(os.environ.get("AMI_PORT") or 5038), user, secret)
    if sock is None:
        return result
    with sock:
        try:
            sock.sendall(b"Action: Ping\r\nActionID: sandbox-probe\r\n\r\n")
            pong, _ = _ami_read(sock, b"")
            sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError as exc:
            return Result(False, f"AMI {host}: {exc}")
    if pong.get("response", "").lower() != "success":
        return Result(False, f"AMI {host} did not answer Ping: {pong}")
    return Result(True, result.detail + ", Ping answered")
