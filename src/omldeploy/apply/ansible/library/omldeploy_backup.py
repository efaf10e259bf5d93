#!/usr/bin/python3
"""Ansible module run ON a tenant host for backup and restore. Python standard library only.

Everything streams: the database dump goes from pg_dump's stdout straight into an S3 multipart upload
(sha256 computed on the way), a restore streams the object from S3 into pg_restore/psql. No full copy
of a dump is ever written to the host's disk.

PostgreSQL is reached either with `podman exec` in the tenant's PostgreSQL container (mode "exec": the
container's own POSTGRES_USER, local socket) or with a one-shot client container
`podman run --rm -i --network=host --env-file=/etc/default/django.env <postgres image>` (mode "client":
managed PostgreSQL, HA). Credentials are never on a command line: S3 keys arrive in the module's
arguments (hidden from Ansible's output by the caller), PostgreSQL ones stay in env files/containers.

ops (argument `op`):
  probe        bucket reachable with these keys; PostgreSQL server version
  backup       dump the database and/or upload a directory of files (Asterisk custom) under a prefix
  put_json     upload a small JSON document (the manifest)
  catalog      list `backup/` with every manifest and verification record
  inspect      objects of one backup (manifest, or the seed's layout without one), with sizes
  verify       re-read objects, check sha256, prove dumps readable (pg_restore --list / SQL sanity)
  restore_db   stream a dump into a fresh scratch database (live database untouched)
  swap_db      stop-the-world part: atomically rename scratch -> live, live -> previous
  drop_scratch remove the scratch database
  stage_files  download files of a backup into a staging directory (sha256 checked)
  swap_files   put staged files in place, keeping the previous directory aside
  units        stop/start systemd units; `asterisk -rx 'dialplan reload'`
  delete       delete objects (retention)
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

try:
    from ansible.module_utils.basic import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        AnsibleModule,
    )
except ImportError:  # imported outside Ansible by the scheduled-backup agent on the host (backup/agent.py)
    AnsibleModule = None  # type: ignore[assignment,misc,unused-ignore]

STATE_ROOT = "/var/lib/omldeploy"
PART_SIZE = 16 * 1024 * 1024
CHUNK = 1024 * 1024
MAX_INFLIGHT = 4
TAIL = 4000


class OpError(Exception):
    """A failure with a clear message for the operator (never carries a secret)."""


# ============================================================================ S3 (SigV4, path style)

class S3Error(OpError):
    def __init__(self, status: int, code: str, message: str, key: str = "") -> None:
        self.status, self.code, self.key = status, code, key
        super().__init__(message)


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class Reply:
    def __init__(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.status, self.data, self.headers = status, data, headers

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class S3:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.bucket = cfg["bucket"]
        self.region = cfg.get("region") or "us-east-1"
        self.ak = cfg["access_key"]
        self.sk = cfg["secret_key"]
        endpoint = cfg.get("endpoint") or ""
        self.virtual = False
        if not endpoint:  # bucket_url: aws
            endpoint = f"https://s3.{self.region}.amazonaws.com"
            self.virtual = True
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OpError(f"bucket endpoint {endpoint!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.endpoint = endpoint
        self.ctx: ssl.SSLContext | None = None
        if self.scheme == "https":
            self.ctx = ssl.create_default_context()
            if not cfg.get("verify_tls", True):
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE
        self._local = threading.local()

    # -- plumbing
    def _conn(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            host = f"{self.bucket}.{self.host}" if self.virtual else self.host
            if self.scheme == "https":
                conn = http.client.HTTPSConnection(host, self.port, timeout=120, context=self.ctx)
            else:
                conn = http.client.HTTPConnection(host, self.port, timeout=120)
            self._local.conn = conn
        return conn

    def _path(self, key: str) -> str:
        if self.virtual:
            path = f"{self.base}/{key}"
        else:
            path = f"{self.base}/{self.bucket}" + (f"/{key}" if key else "/")
        return urllib.parse.quote(path, safe="/~")

    def _headers(self, method: str, path: str, query: dict[str, str], payload_hash: str) -> dict[str, str]:
        now = datetime.datetime.now(datetime.UTC)
        amzdate = now.strftime("%Y%m%dT%H%M%SZ")
        day = amzdate[:8]
        host = f"{self.bucket}.{self.host}" if self.virtual else self.host
        if self.port not in (80, 443):
            host = f"{host}:{self.port}"
        cq = "&".join(f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}"
                      for k, v in sorted(query.items()))
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amzdate}
        signed = ";".join(sorted(headers))
        canon = "\n".join([method, path, cq, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed,
                           payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canon.encode()).hexdigest()])
        k = _sign(_sign(_sign(_sign(("AWS4" + self.sk).encode(), day), self.region), "s3"), "aws4_request")
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, SignedHeaders={signed}, "
                                    f"Signature={sig}")
        return headers

    def request(self, method: str, key: str = "", query: dict[str, str] | None = None, body: bytes = b"",
                ok: tuple[int, ...] = (200,), retries: int = 3, extra: dict[str, str] | None = None) -> Reply:
        resp = self.open(method, key, query, body, ok, retries, extra)
        try:
            return Reply(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
        finally:
            resp.close()

    def open(self, method: str, key: str = "", query: dict[str, str] | None = None, body: bytes = b"",
             ok: tuple[int, ...] = (200,), retries: int = 3, extra: dict[str, str] | None = None
             ) -> http.client.HTTPResponse:
        query = query or {}
        path = self._path(key)
        url = path + ("?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
                      if query else "")
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA
        last: Exception | None = None
        for attempt in range(retries):
            headers = self._headers(method, path, query, payload_hash)
            headers.update(extra or {})
            if body or method in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            try:
                conn = self._conn(fresh=attempt > 0)
                conn.request(method, url, body=body or None, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                if isinstance(exc, ssl.SSLCertVerificationError):
                    raise OpError(f"the bucket endpoint {self.endpoint} presented a certificate that is not "
                                  f"trusted ({exc.verify_message}); use a trusted certificate or set "
                                  "callrec_device: s3-no-check-cert") from None
                time.sleep(1 + attempt)
                continue
            if resp.status in ok:
                return resp
            data = resp.read()
            err = self._error(resp.status, data, key)
            if resp.status >= 500 and attempt < retries - 1:
                last = err
                time.sleep(1 + attempt)
                continue
            raise err
        raise OpError(f"cannot reach the bucket endpoint {self.endpoint}: {last}")

    def _error(self, status: int, data: bytes, key: str) -> S3Error:
        code, message = "", ""
        try:
            root = ET.fromstring(data)
            code = _text(root, "Code")
            message = _text(root, "Message")
        except ET.ParseError:
            pass
        if not code:
            code = {404: "NoSuchKey" if key else "NoSuchBucket", 403: "AccessDenied"}.get(status, f"HTTP{status}")
        human = {
            "NoSuchBucket": f"bucket '{self.bucket}' does not exist at {self.endpoint}",
            "InvalidAccessKeyId": f"the bucket rejected the access key (bucket_access_key) at {self.endpoint}",
            "SignatureDoesNotMatch": f"the bucket rejected the secret key (bucket_secret_key) at {self.endpoint}",
            "AccessDenied": f"access denied to bucket '{self.bucket}' at {self.endpoint} (check the keys and the "
                            "bucket policy)",
            "NoSuchKey": f"object '{key}' does not exist in bucket '{self.bucket}'",
        }.get(code, f"{code}: {message or 'HTTP ' + str(status)}" + (f" (object '{key}')" if key else ""))
        return S3Error(status, code, human, key)

    # -- operations
    def head_bucket(self) -> None:
        self.request("GET", "", {"list-type": "2", "max-keys": "1", "prefix": "backup/"})

    def head(self, key: str) -> int | None:
        try:
            resp = self.request("HEAD", key, ok=(200,))
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        return int(resp.header("Content-Length") or 0)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.request("PUT", key, body=data, extra={"Content-Type": content_type})

    def get(self, key: str) -> bytes:
        return self.request("GET", key).data

    def delete(self, key: str) -> None:
        self.request("DELETE", key, ok=(200, 204))

    def list(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            q = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                q["continuation-token"] = token
            root = ET.fromstring(self.request("GET", "", q).data)
            for c in root:
                if _local(c.tag) == "Contents":
                    out.append({"key": _text(c, "Key"), "size": int(_text(c, "Size") or 0),
                                "modified": _text(c, "LastModified")})
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated") != "true" or not token:
                return out

    def stream(self, key: str) -> Iterator[bytes]:
        resp = self.open("GET", key)
        finished = False
        try:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    finished = True
                    return
                yield chunk
        finally:
            resp.close()
            if not finished:  # a half-read response leaves the connection unusable
                conn = getattr(self._local, "conn", None)
                if conn is not None:
                    conn.close()
                self._local.conn = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(node: ET.Element, name: str) -> str:
    for c in node:
        if _local(c.tag) == name:
            return c.text or ""
    return ""


class Upload:
    """Streaming upload: single PUT when the whole object fits one part, multipart otherwise.
    Parts upload in parallel (bounded) while the producer keeps writing."""

    def __init__(self, s3: S3, key: str) -> None:
        self.s3, self.key = s3, key
        self.buf = bytearray()
        self.upload_id = ""
        self.parts: list[Future[tuple[int, str]]] = []
        self.pool = ThreadPoolExecutor(max_workers=3)
        self.slots = threading.Semaphore(MAX_INFLIGHT)
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.buf += data
        if len(self.buf) >= PART_SIZE:
            self._flush_part()

    def _flush_part(self) -> None:
        if not self.upload_id:
            root = ET.fromstring(self.s3.request("POST", self.key, {"uploads": ""}).data)
            self.upload_id = _text(root, "UploadId")
            if not self.upload_id:
                raise OpError(f"the bucket did not start a multipart upload for {self.key}")
        for f in self.parts:  # surface a failed part early
            exc = f.exception() if f.done() else None
            if exc is not None:
                raise exc
        data = bytes(self.buf)
        self.buf = bytearray()
        number = len(self.parts) + 1
        self.slots.acquire()
        self.parts.append(self.pool.submit(self._part, number, data))

    def _part(self, number: int, data: bytes) -> tuple[int, str]:
        try:
            resp = self.s3.request("PUT", self.key, {"partNumber": str(number), "uploadId": self.upload_id},
                                   body=data)
            return number, resp.header("ETag")
        finally:
            self.slots.release()

    def close(self) -> None:
        try:
            if not self.upload_id:
                self.s3.put(self.key, bytes(self.buf))
                return
            if self.buf:
                self._flush_part()
            done = sorted(f.result() for f in self.parts)
            body = "<CompleteMultipartUpload>" + "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in done
            ) + "</CompleteMultipartUpload>"
            resp = self.s3.request("POST", self.key, {"uploadId": self.upload_id}, body=body.encode())
            if b"<Error>" in resp.data:
                raise self.s3._error(500, resp.data, self.key)
        finally:
            self.pool.shutdown(wait=True)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.upload_id:
            with contextlib.suppress(OpError):
                self.s3.request("DELETE", self.key, {"uploadId": self.upload_id}, ok=(200, 204), retries=1)


# ============================================================================ PostgreSQL access

def pg_argv(db: dict[str, Any], tool: str, args: list[str], interactive: bool = True) -> list[str]:
    """Command line for a PostgreSQL client tool; no credential in it (see the module docstring).
    Mode "local" runs the tools found on PATH with the connection from the PG* environment."""
    if db["mode"] == "local":
        return [tool, *args]
    if db["mode"] == "exec":
        inner = 'PGUSER="${POSTGRES_USER:-postgres}" PGPASSWORD="${POSTGRES_PASSWORD:-}" exec "$@"'
        return ["podman", "exec", *(["-i"] if interactive else []), db["container"], "sh", "-c", inner, "sh",
                tool, *args]
    return ["podman", "run", "--rm", *(["-i"] if interactive else []), "--network=host",
            f"--env-file={db['env_file']}", "--log-driver=none", db["image"], tool, *args]


def psql(db: dict[str, Any], sql: str, database: str | None = None, timeout: int = 600) -> str:
    argv = pg_argv(db, "psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                                database or db["maintenance_db"], "-f", "-"])
    proc = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise OpError(f"psql failed ({proc.returncode}): {clean(proc.stderr or proc.stdout)}")
    return proc.stdout


def clean(text: str) -> str:
    return text.strip()[-TAIL:]


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def server_version(db: dict[str, Any]) -> dict[str, Any]:
    out = psql(db, "SHOW server_version; SHOW server_version_num;").split()
    return {"server_version": out[0] if out else "", "server_version_num": int(out[-1]) if out else 0}


# ============================================================================ helpers

class Progress:
    def __init__(self, tenant: str, phase: str, total: int = 0) -> None:
        self.path = os.path.join(STATE_ROOT, tenant, "backup-progress.json")
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self.phase, self.total, self.t0, self.last = phase, total, time.monotonic(), 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"phase": self.phase, "bytes": done, "total": self.total,
                       "seconds": round(now - self.t0, 1)}, fh)
        os.replace(tmp, self.path)

    def done(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class Tail:
    """Keeps the end of a process stream (stderr) in a thread, so pipes never fill up."""

    def __init__(self, stream: Any) -> None:
        self.data = b""
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.data = (self.data + line)[-TAIL:]
            if len(self.lines) < 20000:
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def text(self) -> str:
        self.thread.join(timeout=10)
        return self.data.decode("utf-8", "replace").strip()


def feed(chunks: Iterator[bytes], proc: subprocess.Popen[bytes], on_chunk: Callable[[bytes], None]) -> bool:
    """Write chunks to proc's stdin, hashing all of them even if the process stops reading early.
    Returns False when the process closed its input before the end."""
    assert proc.stdin is not None
    open_ = True
    for chunk in chunks:
        on_chunk(chunk)
        if open_:
            try:
                proc.stdin.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                open_ = False
    if open_:
        try:
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            open_ = False
    return open_


def prefetch(chunks: Iterator[bytes], depth: int = 8) -> Iterator[bytes]:
    """Download in a thread ahead of the consumer (network and restore overlap)."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)

    def run() -> None:
        try:
            for c in chunks:
                q.put(c)
            q.put(None)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    threading.Thread(target=run, daemon=True).start()
    while True:
        item = q.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def dump_format(first: bytes) -> str:
    return "custom" if first.startswith(b"PGDMP") else "plain"


DUMPED_FROM = re.compile(r"Dumped from database version:?\s*(\d+)(?:\.(\d+))?")


# ============================================================================ ops

def op_probe(p: dict[str, Any]) -> dict[str, Any]:
    s3 = S3(p["s3"])
    s3.head_bucket()
    out: dict[str, Any] = {"bucket": "ok"}
    if p.get("db"):
        out.update(server_version(p["db"]))
    return out


def op_backup(p: dict[str, Any]) -> dict[str, Any]:
    s3 = S3(p["s3"])
    s3.head_bucket()
    out: dict[str, Any] = {"objects": []}
    if p.get("db"):
        out.update(_dump(s3, p))
    if p.get("files"):
        out["objects"] += _upload_dir(s3, p["files"]["dir"], p["files"]["prefix"])
        out["files_host"] = True
    return out


def _dump(s3: S3, p: dict[str, Any]) -> dict[str, Any]:
    db = p["db"]
    info = server_version(db)
    key = p["dump_key"]
    fmt = p.get("format", "custom")
    args = ["-d", db["database"], "--no-password"]
    args += ["-Fc"] if fmt == "custom" else ["-Fp"]
    t0 = time.monotonic()
    proc = subprocess.Popen(pg_argv(db, "pg_dump", args, interactive=False), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    err = Tail(proc.stderr)
    up = Upload(s3, key)
    progress = Progress(p["tenant"], "dump")
    try:
        while True:
            chunk = proc.stdout.read(CHUNK)
            if not chunk:
                break
            up.write(chunk)
            progress.update(up.size)
        rc = proc.wait()
        if rc != 0:
            raise OpError(f"pg_dump failed ({rc}): {err.text()}")
        if up.size == 0:
            raise OpError("pg_dump produced no output")
        up.close()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        up.abort()
        raise
    finally:
        progress.done()
    seconds = time.monotonic() - t0
    stored = s3.head(key)
    if stored != up.size:
        raise OpError(f"uploaded {up.size} bytes but the bucket reports {stored} for {key}")
    version = subprocess.run(pg_argv(db, "pg_dump", ["--version"], interactive=False), capture_output=True,
                             text=True, timeout=120).stdout.strip()
    return {"objects": [{"key": key, "size": up.size, "sha256": up.sha.hexdigest(), "kind": f"dump-{fmt}"}],
            "dump_seconds": round(seconds, 2), "pg_dump_version": version, "database": db["database"], **info}


def _upload_dir(s3: S3, root: str, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not os.path.isdir(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            rel = os.path.relpath(path, root)
            key = f"{prefix}{rel}"
            s3.put(key, data, "text/plain")
            out.append({"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "kind": "file",
                        "mode": f"{os.stat(path).st_mode & 0o7777:04o}"})
    return out


def op_put_json(p: dict[str, Any]) -> dict[str, Any]:
    s3 = S3(p["s3"])
    data = json.dumps(p["document"], indent=1, sort_keys=True).encode()
    s3.put(p["key"], data, "application/json")
    return {"key": p["key"], "size": len(data)}


def op_catalog(p: dict[str, Any]) -> dict[str, Any]:
    s3 = S3(p["s3"])
    objects = s3.list("backup/")
    docs: dict[str, Any] = {}
    for o in objects:
        if o["key"].endswith(("/manifest.json", "/verify.json")):
            try:
                docs[o["key"]] = json.loads(s3.get(o["key"]))
            except (ValueError, OpError) as exc:
                docs[o["key"]] = {"unreadable": str(exc)}
    media = s3.list("media_root/") if p.get("media") else []
    return {"objects": objects, "documents": docs, "media_root_objects": len(media)}


def op_verify(p: dict[str, Any]) -> dict[str, Any]:
    """Re-read every object; sha256 against the manifest (when known); dumps proven readable."""
    s3 = S3(p["s3"])
    results = []
    for obj in p["objects"]:
        results.append(_verify_one(s3, p, obj))
    return {"results": results, "ok": all(r["ok"] for r in results)}


def _verify_one(s3: S3, p: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    key = obj["key"]
    res: dict[str, Any] = {"key": key, "ok": False}
    sha = hashlib.sha256()
    size = 0
    t0 = time.monotonic()
    progress = Progress(p["tenant"], f"verify {key}", int(obj.get("size") or 0))
    try:
        chunks = prefetch(s3.stream(key))
        first = b""
        head: list[bytes] = []
        for c in chunks:  # peek the first chunk to learn the format
            head.append(c)
            first = c
            break
        fmt = dump_format(first) if obj.get("kind", "").startswith("dump") else "file"
        res["format"] = fmt

        def count(c: bytes) -> None:
            nonlocal size
            sha.update(c)
            size += len(c)
            progress.update(size)

        def all_chunks() -> Iterator[bytes]:
            yield from head
            yield from chunks

        if fmt == "custom":
            proc = subprocess.Popen(pg_argv(p["db"], "pg_restore", ["--list"]), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = Tail(proc.stdout), Tail(proc.stderr)
            feed(all_chunks(), proc, count)
            rc = proc.wait()
            listing = "\n".join(out.lines)
            if rc != 0:
                res["error"] = f"pg_restore --list cannot read it: {err.text() or listing[-500:]}"
            else:
                res["toc_entries"] = sum(1 for ln in out.lines if ln and not ln.startswith(";"))
                m = DUMPED_FROM.search(listing)
                if m:
                    res["dumped_from_major"] = int(m.group(1))
        elif fmt == "plain":
            tail = b""
            start = b""
            for c in all_chunks():
                count(c)
                if len(start) < 65536:
                    start += c[:65536]
                tail = (tail + c)[-65536:]
            text_start = start.decode("utf-8", "replace")
            if "PostgreSQL database dump" not in text_start:
                res["error"] = "not a PostgreSQL dump (no 'PostgreSQL database dump' header)"
            elif b"PostgreSQL database dump complete" not in tail:
                res["error"] = "the SQL dump is truncated (no 'PostgreSQL database dump complete' at its end)"
            m = DUMPED_FROM.search(text_start)
            if m:
                res["dumped_from_major"] = int(m.group(1))
        else:
            for c in all_chunks():
                count(c)
    except OpError as exc:
        res["error"] = str(exc)
        return res
    finally:
        progress.done()
    res.update(size=size, sha256=sha.hexdigest(), seconds=round(time.monotonic() - t0, 2))
    want = obj.get("sha256")
    if "error" not in res:
        if obj.get("size") is not None and size != int(obj["size"]):
            res["error"] = f"size {size} differs from the manifest's {obj['size']}"
        elif want and res["sha256"] != want:
            res["error"] = "sha256 differs from the manifest (the object is corrupted or was replaced)"
        else:
            res["ok"] = True
            res["checked_sha"] = bool(want)
    return res


def op_inspect(p: dict[str, Any]) -> dict[str, Any]:
    """What one backup id consists of: from its manifest, or (seed/migration backups) by convention."""
    s3 = S3(p["s3"])
    ts = p["ts"]
    out: dict[str, Any] = {"ts": ts}
    try:
        out["manifest"] = json.loads(s3.get(f"backup/{ts}/manifest.json"))
    except S3Error as exc:
        if exc.status == 404 and exc.code in ("NoSuchKey", "HTTP404"):
            out["manifest"] = None
        elif exc.code == "NoSuchBucket":
            raise
        else:
            raise
    except ValueError:
        raise OpError(f"backup/{ts}/manifest.json is not valid JSON (corrupted manifest)") from None
    if out["manifest"] is None:
        for ext in ("dump", "sql"):
            key = f"backup/pgsql-backup-{ts}.{ext}"
            size = s3.head(key)
            if size is not None:
                out["dump"] = {"key": key, "size": size, "kind": "dump"}
                break
        files = s3.list(f"backup/asterisk/{ts}/")
        out["files"] = [{"key": o["key"], "size": o["size"], "kind": "file"} for o in files]
    else:
        missing = []
        for o in out["manifest"].get("objects", []):
            size = s3.head(o["key"])
            if size is None:
                missing.append(o["key"])
            elif size != o["size"]:
                missing.append(f"{o['key']} (size {size}, manifest says {o['size']})")
        out["missing"] = missing
    if p.get("db"):
        out.update(server_version(p["db"]))
        rows = psql(p["db"], f"SELECT datname FROM pg_database WHERE datname = {lit(p['db']['database'])};")
        out["live_exists"] = bool(rows.strip())
    media = s3.list("media_root/")
    out["media_root_objects"] = len(media)
    return out


def op_restore_db(p: dict[str, Any]) -> dict[str, Any]:
    """Stream the dump into a fresh scratch database. The live database is not touched; on any
    failure (download, sha256, restore error) the scratch database is dropped."""
    s3 = S3(p["s3"])
    db = p["db"]
    scratch = p["scratch"]
    obj = p["object"]
    key = obj["key"]
    psql(db, f"DROP DATABASE IF EXISTS {ident(scratch)};\n")
    psql(db, f"CREATE DATABASE {ident(scratch)} TEMPLATE template0;\n")
    sha = hashlib.sha256()
    size = 0
    t0 = time.monotonic()
    progress = Progress(p["tenant"], "restore", int(obj.get("size") or 0))
    try:
        chunks = prefetch(s3.stream(key))
        first = next(chunks, b"")
        fmt = dump_format(first)
        if fmt == "custom":
            argv = pg_argv(db, "pg_restore", ["--no-owner", "--no-acl", "--exit-on-error", "-d", scratch])
        else:
            argv = pg_argv(db, "psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scratch, "-f", "-"])
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = Tail(proc.stdout), Tail(proc.stderr)

        def count(c: bytes) -> None:
            nonlocal size
            sha.update(c)
            size += len(c)
            progress.update(size)

        def all_chunks() -> Iterator[bytes]:
            yield first
            yield from chunks

        try:
            complete = feed(all_chunks(), proc, count)
        except BaseException:
            proc.kill()
            raise
        rc = proc.wait()
        out.text()
        if rc != 0:
            what = "pg_restore" if fmt == "custom" else "psql"
            raise OpError(f"{what} failed restoring {key} ({rc}): {err.text()}")
        if not complete:
            raise OpError(f"the restore stopped reading {key} before its end")
        if obj.get("size") is not None and size != int(obj["size"]):
            raise OpError(f"{key}: read {size} bytes, the manifest says {obj['size']}")
        if obj.get("sha256") and sha.hexdigest() != obj["sha256"]:
            raise OpError(f"{key}: sha256 differs from the manifest (the object is corrupted or was replaced)")
        stats = psql(db, "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN "
                         "('pg_catalog','information_schema');", database=scratch).strip()
    except BaseException:
        with contextlib.suppress(OpError):
            psql(db, f"DROP DATABASE IF EXISTS {ident(scratch)};\n")
        raise
    finally:
        progress.done()
    return {"key": key, "format": fmt, "size": size, "sha256": sha.hexdigest(), "checked_sha": bool(obj.get("sha256")),
            "seconds": round(time.monotonic() - t0, 2), "tables": int(stats or 0), "warnings": err.text()[-1500:]}


def op_swap_db(p: dict[str, Any]) -> dict[str, Any]:
    """live -> previous and scratch -> live in ONE transaction (both renames or neither)."""
    db = p["db"]
    live, scratch, previous = db["database"], p["scratch"], p["previous"]
    exists = psql(db, f"SELECT datname FROM pg_database WHERE datname IN ({lit(live)}, {lit(scratch)});")
    names = set(exists.split())
    if scratch not in names:
        raise OpError(f"the restored database {scratch} is missing; nothing was swapped")
    kill = (f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ({lit(live)}, {lit(scratch)}, "
            f"{lit(previous)}) AND pid <> pg_backend_pid();\n")
    if live in names:
        psql(db, kill)
        psql(db, f"DROP DATABASE IF EXISTS {ident(previous)};\n")
    last = ""
    for _ in range(10):
        sql = kill + "BEGIN;\n"
        if live in names:
            sql += f"ALTER DATABASE {ident(live)} RENAME TO {ident(previous)};\n"
        sql += f"ALTER DATABASE {ident(scratch)} RENAME TO {ident(live)};\nCOMMIT;\n"
        try:
            psql(db, sql)
            return {"previous": previous if live in names else None, "live": live}
        except OpError as exc:
            last = str(exc)
            time.sleep(1)
    raise OpError(f"could not switch to the restored database (clients kept connecting?): {last}")


def op_drop_scratch(p: dict[str, Any]) -> dict[str, Any]:
    psql(p["db"], f"DROP DATABASE IF EXISTS {ident(p['scratch'])};\n")
    return {"dropped": p["scratch"]}


def op_stage_files(p: dict[str, Any]) -> dict[str, Any]:
    s3 = S3(p["s3"])
    staging = p["staging"]
    prefix = p["prefix"]
    if os.path.isdir(staging):
        shutil.rmtree(staging)
    os.makedirs(staging, mode=0o755)
    staged = []
    try:
        for obj in p["objects"]:
            rel = obj["key"][len(prefix):]
            if not rel or rel.startswith("/") or ".." in rel.split("/"):
                raise OpError(f"refusing object with an unsafe name: {obj['key']}")
            data = s3.get(obj["key"])
            if obj.get("sha256") and hashlib.sha256(data).hexdigest() != obj["sha256"]:
                raise OpError(f"{obj['key']}: sha256 differs from the manifest (corrupted or replaced)")
            path = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mode = int(obj.get("mode") or "0644", 8) & 0o777
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(path, mode)
            staged.append(rel)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"staged": staged}


def op_swap_files(p: dict[str, Any]) -> dict[str, Any]:
    target, staging, aside = p["target"], p["staging"], p["aside"]
    if not os.path.isdir(staging):
        raise OpError(f"staged files missing in {staging}")
    kept = None
    if os.path.isdir(target):
        kept = aside
        n = 1
        while os.path.exists(kept):
            kept = f"{aside}.{n}"
            n += 1
        os.rename(target, kept)
    os.rename(staging, target)
    os.chmod(target, 0o755)
    return {"restored": sorted(os.listdir(target)), "previous_kept_in": kept}


def op_unstage(p: dict[str, Any]) -> dict[str, Any]:
    shutil.rmtree(p["staging"], ignore_errors=True)
    return {"removed": p["staging"]}


def op_units(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stopped": [], "reloaded": []}
    for unit in p.get("stop", []):
        proc = subprocess.run(["systemctl", "stop", f"{unit}.service"], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise OpError(f"cannot stop {unit}.service: {clean(proc.stderr)}")
        out["stopped"].append(unit)
    for container in p.get("dialplan_reload", []):
        proc = subprocess.run(["podman", "exec", container, "asterisk", "-rx", "dialplan reload"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise OpError(f"dialplan reload in {container} failed: {clean(proc.stderr or proc.stdout)}")
        out["reloaded"].append(container)
    return out


def op_delete(p: dict[str, Any]) -> dict[str, Any]:
    s3 = S3(p["s3"])
    deleted = []
    for key in p["keys"]:
        s3.delete(key)
        deleted.append(key)
    return {"deleted": deleted}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "probe": op_probe, "backup": op_backup, "put_json": op_put_json, "catalog": op_catalog, "verify": op_verify,
    "inspect": op_inspect, "restore_db": op_restore_db, "swap_db": op_swap_db, "drop_scratch": op_drop_scratch,
    "stage_files": op_stage_files, "unstage": op_unstage, "swap_files": op_swap_files, "units": op_units,
    "delete": op_delete,
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "op": {"type": "str", "required": True, "choices": sorted(OPS)},
            "tenant": {"type": "str", "required": True},
            "s3": {"type": "dict"},  # endpoint, region, bucket, access_key, verify_tls
            # only the secret is no_log: Ansible masks every occurrence of a no_log value in the result,
            # which would also hide the endpoint and bucket name from error messages
            "s3_secret_key": {"type": "str", "no_log": True},
            "db": {"type": "dict"},
            "files": {"type": "dict"},
            "format": {"type": "str", "default": "custom"},
            "dump_key": {"type": "str"},
            "document": {"type": "dict"},
            "key": {"type": "str"},
            "keys": {"type": "list", "elements": "str", "default": []},
            "objects": {"type": "list", "elements": "dict", "default": []},
            "object": {"type": "dict"},
            "ts": {"type": "str"},
            "scratch": {"type": "str"},
            "previous": {"type": "str"},
            "staging": {"type": "str"},
            "prefix": {"type": "str"},
            "target": {"type": "str"},
            "aside": {"type": "str"},
            "stop": {"type": "list", "elements": "str", "default": []},
            "dialplan_reload": {"type": "list", "elements": "str", "default": []},
            "media": {"type": "bool", "default": False},
        },
    )
    p = dict(module.params)
    if p.get("s3") is not None:
        p["s3"] = {**p["s3"], "secret_key": p.get("s3_secret_key") or ""}
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", p["tenant"]):
        module.fail_json(msg="bad tenant name", report={"failed": True})
    try:
        report = OPS[p["op"]](p)
    except (OpError, OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(msg=str(exc), report={"failed": True, "error": str(exc)})
    module.exit_json(changed=p["op"] not in ("probe", "catalog", "verify", "inspect"), report=report)


if __name__ == "__main__":
    main()
