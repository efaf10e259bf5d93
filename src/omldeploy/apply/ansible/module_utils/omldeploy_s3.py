"""A small S3 client (SigV4, path style or AWS virtual hosts) for the backup host module. Standard library only.

Shipped two ways: Ansible bundles it with `omldeploy_backup` (ANSIBLE_MODULE_UTILS), and the scheduled
backup copies it beside the module on the host (`render/backup_schedule.py`), where it is imported as `omldeploy_s3`.

Transient failures are retried, as botocore's "standard" mode does, because a loaded bucket (MinIO,
SeaweedFS, AWS under SlowDown) answers a few 5xx or resets a connection now and then and a backup that
fails for one of those is a backup missing at 03:15. Rules:

- retried: HTTP 429/500/502/503/504, the error codes in RETRY_CODES (also inside a 200 answer to
  CompleteMultipartUpload), connection resets/timeouts/refusals; never: 4xx (403 keys, 404 object, 400
  bad digest), an untrusted certificate.
- at most MAX_RETRIES retries per request, exponential backoff with jitter (BACKOFF_BASE * 2**n, times a
  random factor in [0.5, 1], capped at BACKOFF_CAP), and each retry is announced through `on_retry`
  ("S3 PUT key part 3: 500 InternalError, retry 1/4 in 0.4 s") so the operator sees it.
- a request body is always in memory (a multipart part is buffered before it is sent), so a retry
  resends that part only; a streamed dump is never re-read. A GET that breaks mid-body resumes with a
  Range request from the byte it reached, checking the object's ETag did not change.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import http.client
import random
import ssl
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

PART_SIZE = 16 * 1024 * 1024
CHUNK = 1024 * 1024
MAX_INFLIGHT = 4
MAX_RETRIES = 4
BACKOFF_BASE = 0.2
BACKOFF_CAP = 8.0
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
                         "RequestTimeout", "RequestLimitExceeded", "TooManyRequestsException",
                         "BandwidthLimitExceeded", "ProvisionedThroughputExceededException"})
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class OpError(Exception):
    """A failure with a clear message for the operator (never carries a secret)."""


class S3Error(OpError):
    def __init__(self, status: int, code: str, message: str, key: str = "") -> None:
        self.status, self.code, self.key = status, code, key
        super().__init__(message)

    @property
    def transient(self) -> bool:
        return self.status in RETRY_STATUS or self.code in RETRY_CODES


class _Transient(Exception):
    """One failed attempt worth retrying: `text` describes it, `final` is raised when retries run out."""

    def __init__(self, text: str, final: Exception) -> None:
        super().__init__(text)
        self.text, self.final = text, final


class Reply:
    def __init__(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.status, self.data, self.headers = status, data, headers

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def backoff(retry: int) -> float:
    """Seconds before retry number `retry` (1-based): exponential, capped, with jitter."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** retry) * random.uniform(0.5, 1.0)


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def text_of(node: ET.Element, name: str) -> str:
    for c in node:
        if local_name(c.tag) == name:
            return c.text or ""
    return ""


class S3:
    def __init__(self, cfg: dict[str, Any], on_retry: Callable[[str], None] | None = None) -> None:
        self.bucket = cfg["bucket"]
        self.region = cfg.get("region") or "us-east-1"
        self.ak = cfg["access_key"]
        self.sk = cfg["secret_key"]
        self.on_retry = on_retry
        self.retries = 0  # how many retries this client made (reported with the operation)
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
        self._lock = threading.Lock()

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

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _path(self, key: str) -> str:
        if self.virtual:
            path = f"{self.base}/{key}"
        else:
            path = f"{self.base}/{self.bucket}" + (f"/{key}" if key else "/")
        return urllib.parse.quote(path, safe="/~")

    def _headers(self, method: str, path: str, query: dict[str, str], payload_hash: str,
                 amz: dict[str, str] | None = None) -> dict[str, str]:
        """SigV4 headers; every x-amz-* header (copy source...) must be signed, so they come in `amz`."""
        now = datetime.datetime.now(datetime.UTC)
        amzdate = now.strftime("%Y%m%dT%H%M%SZ")
        day = amzdate[:8]
        host = f"{self.bucket}.{self.host}" if self.virtual else self.host
        if self.port not in (80, 443):
            host = f"{host}:{self.port}"
        cq = "&".join(f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}"
                      for k, v in sorted(query.items()))
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amzdate,
                   **{k.lower(): v for k, v in (amz or {}).items()}}
        signed = ";".join(sorted(headers))
        canon = "\n".join([method, path, cq, "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers)),
                           signed, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canon.encode()).hexdigest()])
        k = _sign(_sign(_sign(_sign(("AWS4" + self.sk).encode(), day), self.region), "s3"), "aws4_request")
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, SignedHeaders={signed}, "
                                    f"Signature={sig}")
        return headers

    def _note(self, text: str) -> None:
        with self._lock:
            self.retries += 1
        if self.on_retry is not None:
            self.on_retry(text)

    def retrying(self, label: str, attempt: Callable[[int], Any], retries: int | None = None) -> Any:
        """Run `attempt(n)` until it returns; a _Transient is retried after a backoff, up to `retries`."""
        limit = MAX_RETRIES if retries is None else retries
        n = 0
        while True:
            try:
                return attempt(n)
            except _Transient as t:
                if n >= limit:
                    raise t.final from None
                n += 1
                delay = backoff(n)
                self._note(f"S3 {label}: {t.text}, retry {n}/{limit} in {delay:.1f} s")
                time.sleep(delay)

    def _send(self, method: str, key: str, query: dict[str, str], body: bytes, extra: dict[str, str] | None,
              fresh: bool, attempts: int) -> http.client.HTTPResponse:
        """One HTTP exchange up to the response headers; connection trouble becomes _Transient."""
        path = self._path(key)
        url = path + ("?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
                      if query else "")
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA
        amz = {k: v for k, v in (extra or {}).items() if k.lower().startswith("x-amz-")}
        headers = self._headers(method, path, query, payload_hash, amz)
        headers.update({k: v for k, v in (extra or {}).items() if k not in amz})
        if body or method in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        try:
            conn = self._conn(fresh=fresh)
            conn.request(method, url, body=body or None, headers=headers)
            return conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            raise OpError(f"the bucket endpoint {self.endpoint} presented a certificate that is not trusted "
                          f"({exc.verify_message}); use a trusted certificate or set "
                          "callrec_device: s3-no-check-cert") from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop_conn()
            raise _Transient(_describe(exc), OpError(
                f"cannot reach the bucket endpoint {self.endpoint}: {_describe(exc)} "
                f"(gave up after {attempts} attempts)")) from None

    def open(self, method: str, key: str = "", query: dict[str, str] | None = None, body: bytes = b"",
             ok: tuple[int, ...] = (200,), retries: int | None = None, extra: dict[str, str] | None = None,
             label: str = "") -> http.client.HTTPResponse:
        """Response with its body unread (for streaming); errors and transient failures handled."""
        q = query or {}
        limit = MAX_RETRIES if retries is None else retries

        def attempt(n: int) -> http.client.HTTPResponse:
            resp = self._send(method, key, q, body, extra, n > 0, limit + 1)
            if resp.status in ok:
                return resp
            data = _read_all(resp, self, limit + 1)
            raise self._failure(resp.status, data, key, limit + 1)

        resp: http.client.HTTPResponse = self.retrying(f"{method} {label or key or self.bucket}", attempt, retries)
        return resp

    def request(self, method: str, key: str = "", query: dict[str, str] | None = None, body: bytes = b"",
                ok: tuple[int, ...] = (200,), retries: int | None = None, extra: dict[str, str] | None = None,
                label: str = "", error_in_body: bool = False) -> Reply:
        """A whole exchange, body read. `error_in_body`: a 200 answer may still carry <Error> (S3 does this for
        CompleteMultipartUpload and CopyObject); it is then handled like an error status."""
        q = query or {}
        limit = MAX_RETRIES if retries is None else retries

        def attempt(n: int) -> Reply:
            resp = self._send(method, key, q, body, extra, n > 0, limit + 1)
            data = _read_all(resp, self, limit + 1)
            if resp.status in ok and not (error_in_body and b"<Error>" in data[:2048]):
                return Reply(resp.status, data, {k.lower(): v for k, v in resp.getheaders()})
            raise self._failure(500 if resp.status in ok else resp.status, data, key, limit + 1)

        reply: Reply = self.retrying(f"{method} {label or key or self.bucket}", attempt, retries)
        return reply

    def _failure(self, status: int, data: bytes, key: str, attempts: int) -> Exception:
        err = self._error(status, data, key)
        if not err.transient:
            return err
        final = S3Error(err.status, err.code, f"{err} (gave up after {attempts} attempts)", key)
        return _Transient(f"{status} {err.code}", final)

    def _error(self, status: int, data: bytes, key: str) -> S3Error:
        code, message = "", ""
        try:
            root = ET.fromstring(data)
            code = text_of(root, "Code")
            message = text_of(root, "Message")
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
        info = self.stat(key)
        return None if info is None else info[0]

    def stat(self, key: str) -> tuple[int, str] | None:
        """(size, ETag) of an object, None when it does not exist."""
        try:
            resp = self.request("HEAD", key, ok=(200,))
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        return int(resp.header("Content-Length") or 0), resp.header("ETag")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.request("PUT", key, body=data, extra={"Content-Type": content_type})

    def get(self, key: str) -> bytes:
        return self.request("GET", key).data

    def delete(self, key: str) -> None:
        self.request("DELETE", key, ok=(200, 204))

    def copy(self, source: str, key: str) -> None:
        """Server-side copy within the bucket (objects up to 5 GB: media files are far smaller)."""
        src = urllib.parse.quote(f"/{self.bucket}/{source}", safe="/~")
        self.request("PUT", key, extra={"x-amz-copy-source": src, "x-amz-metadata-directive": "COPY"},
                     error_in_body=True, label=f"copy {source} -> {key}")

    def list(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            q = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                q["continuation-token"] = token
            root = ET.fromstring(self.request("GET", "", q, label=f"list {prefix}").data)
            for c in root:
                if local_name(c.tag) == "Contents":
                    out.append({"key": text_of(c, "Key"), "size": int(text_of(c, "Size") or 0),
                                "modified": text_of(c, "LastModified"), "etag": text_of(c, "ETag")})
            token = text_of(root, "NextContinuationToken")
            if text_of(root, "IsTruncated") != "true" or not token:
                return out

    def stream(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks. A body that breaks off (reset, timeout, closed early) is resumed
        with a Range request from the byte reached — as long as the ETag says it is the same object."""
        resp = self.open("GET", key)
        etag = resp.getheader("ETag") or ""
        offset = 0
        end = int(resp.getheader("Content-Length") or -1)
        resumes = 0
        finished = False
        try:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                    if not chunk and end >= 0 and offset < end:
                        raise http.client.IncompleteRead(b"", end - offset)
                except (OSError, http.client.HTTPException) as exc:
                    resp.close()
                    self._drop_conn()
                    if resumes >= MAX_RETRIES:
                        raise OpError(f"reading {key} from the bucket failed at byte {offset}: {_describe(exc)} "
                                      f"(gave up after {resumes + 1} attempts)") from None
                    resumes += 1
                    delay = backoff(resumes)
                    self._note(f"S3 GET {key}: {_describe(exc)} at byte {offset}, retry {resumes}/{MAX_RETRIES} "
                               f"in {delay:.1f} s")
                    time.sleep(delay)
                    resp = self.open("GET", key, ok=(206,), extra={"Range": f"bytes={offset}-"})
                    if etag and (resp.getheader("ETag") or "") != etag:
                        raise OpError(f"{key} changed in the bucket while it was being read") from None
                    end = offset + int(resp.getheader("Content-Length") or 0)
                    continue
                if not chunk:
                    finished = True
                    return
                offset += len(chunk)
                yield chunk
        finally:
            resp.close()
            if not finished:  # a half-read response leaves the connection unusable
                self._drop_conn()


def _read_all(resp: http.client.HTTPResponse, s3: S3, attempts: int) -> bytes:
    try:
        return resp.read()
    except (OSError, http.client.HTTPException) as exc:
        s3._drop_conn()
        raise _Transient(_describe(exc), OpError(
            f"cannot read an answer of the bucket endpoint {s3.endpoint}: {_describe(exc)} "
            f"(gave up after {attempts} attempts)")) from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Upload:
    """Streaming upload: a single PUT when the whole object fits one part, multipart otherwise.

    The producer (pg_dump's stdout) is read once: each part is cut into its own buffer and handed to a
    bounded pool, so parts upload in parallel while the dump goes on, and a part that meets a transient
    error is resent from its buffer by the client's retries. Memory: at most MAX_INFLIGHT parts."""

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
            root = ET.fromstring(self.s3.request("POST", self.key, {"uploads": ""}, label=f"{self.key} (start)").data)
            self.upload_id = text_of(root, "UploadId")
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
                                   body=data, label=f"{self.key} part {number}")
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
            try:
                self.s3.request("POST", self.key, {"uploadId": self.upload_id}, body=body.encode(),
                                error_in_body=True, label=f"{self.key} (complete)")
            except S3Error as exc:
                # a retried completion whose first answer was lost: the upload is gone because it completed
                if exc.code != "NoSuchUpload" or self.s3.head(self.key) != self.size:
                    raise
        finally:
            self.pool.shutdown(wait=True)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.upload_id:
            with contextlib.suppress(OpError):
                self.s3.request("DELETE", self.key, {"uploadId": self.upload_id}, ok=(200, 204), retries=1)
