#!/usr/bin/python3
"""Ansible module run ON a tenant host for backup and restore. Python standard library only.

Dumps stream: pg_dump's stdout goes straight into an S3 multipart upload (sha256 computed on the way),
never to the host's disk. A restore of a custom-format dump is spooled whole into the PostgreSQL
container's /tmp (or the host's /var/tmp without a container), sha256-checked before anything is restored,
and loaded with `pg_restore -j` (one job per CPU, at most 4): its tables and indexes load in parallel,
which a stream cannot do because pg_restore -j needs to seek. Where that space is short, where there is
one CPU, or for plain SQL dumps and the one-shot client container, the object streams into
pg_restore/psql as it downloads.

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
import datetime  # noqa: F401  (unit tests pin the SigV4 clock through `mod.datetime`)
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

try:
    from ansible.module_utils.basic import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        AnsibleModule,
    )
except ImportError:  # imported outside Ansible by the scheduled-backup agent on the host (backup/agent.py)
    AnsibleModule = None  # type: ignore[assignment,misc,unused-ignore]
try:  # under Ansible: shipped by AnsiballZ from ANSIBLE_MODULE_UTILS (apply/engine.py)
    from ansible.module_utils import omldeploy_s3 as s3lib  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # the scheduled agent (copied beside this file) and the source tree (../module_utils)
    _here = os.path.dirname(os.path.abspath(__file__))
    for _d in (os.path.join(os.path.dirname(_here), "module_utils"), _here):
        if os.path.isfile(os.path.join(_d, "omldeploy_s3.py")) and _d not in sys.path:
            sys.path.insert(0, _d)
    import omldeploy_s3 as s3lib  # type: ignore[import-not-found,no-redef,unused-ignore]
try:
    from ansible.module_utils import omldeploy_safefs as safefs  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # as for omldeploy_s3 above: beside this file, or in ../module_utils
    _here = os.path.dirname(os.path.abspath(__file__))
    for _d in (os.path.join(os.path.dirname(_here), "module_utils"), _here):
        if os.path.isfile(os.path.join(_d, "omldeploy_safefs.py")) and _d not in sys.path:
            sys.path.insert(0, _d)
    import omldeploy_safefs as safefs  # type: ignore[import-not-found,no-redef,unused-ignore]

OpError = s3lib.OpError
S3Error = s3lib.S3Error
S3 = s3lib.S3
Upload = s3lib.Upload
CHUNK = s3lib.CHUNK
EMPTY_SHA = s3lib.EMPTY_SHA
STATE_ROOT = "/var/lib/omldeploy"
TAIL = 4000
#: every retry of a transient S3 failure in this run, in order: shown live in the progress file, returned
#: in the operation's report (the controller prints them) and echoed by the scheduled agent (ECHO)
NOTES: list[str] = []
ECHO: Callable[[str], None] | None = None


def note(text: str) -> None:
    NOTES.append(text)
    if ECHO is not None:
        ECHO(text)


def bucket(p: dict[str, Any]) -> Any:
    """The S3 client for an operation's `s3` argument, reporting its retries through note()."""
    return S3(p["s3"], on_retry=note)


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
    # `host` (HA backups): the standby's address instead of the env file's PGHOST (the RW VIP)
    host = ["-e", f"PGHOST={db['host']}"] if db.get("host") else []
    return ["podman", "run", "--rm", *(["-i"] if interactive else []), "--network=host",
            f"--env-file={db['env_file']}", *host, "--log-driver=none", db["image"], tool, *args]


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
                       "seconds": round(now - self.t0, 1), "notes": NOTES[-50:], "notes_total": len(NOTES)}, fh)
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
    s3 = bucket(p)
    s3.head_bucket()
    out: dict[str, Any] = {"bucket": "ok"}
    if p.get("db"):
        out.update(server_version(p["db"]))
    return out


def existing(s3: Any, ts: str) -> list[str]:
    """The objects that already make backup `ts` (its manifest, or a seed-style dump of that id)."""
    keys = [f"backup/{ts}/manifest.json", f"backup/pgsql-backup-{ts}.dump", f"backup/pgsql-backup-{ts}.sql"]
    return [k for k in keys if s3.head(k) is not None]


def op_backup(p: dict[str, Any]) -> dict[str, Any]:
    s3 = bucket(p)
    s3.head_bucket()
    if p.get("ts"):  # refuse to overwrite a backup of the same id, in the same SSH round trip as the dump
        taken = existing(s3, p["ts"])
        if taken:
            return {"exists": taken, "objects": []}
    out: dict[str, Any] = {"objects": []}
    if p.get("db"):
        out.update(_dump(s3, p))
    if p.get("files"):
        out["objects"] += _upload_dir(s3, p["files"]["dir"], p["files"]["prefix"])
        out["files_host"] = True
    if p.get("media"):
        out["objects"] += _copy_media(s3, p["media"]["source"], p["media"]["prefix"])
    return out


def _copy_media(s3: Any, source: str, prefix: str) -> list[dict[str, Any]]:
    """Snapshot the app's media (uploaded audio, CSV bases...) that it keeps in the bucket under `source`.
    Each object streams through this host into `prefix` and is hashed on the way, so the manifest's
    sha256 is that of what was written (a server-side copy could not prove that)."""
    out: list[dict[str, Any]] = []
    for o in s3.list(source):
        rel = o["key"][len(source):]
        if not rel or rel.endswith("/"):
            continue  # "directory" placeholders
        up = Upload(s3, prefix + rel)
        try:
            for chunk in s3.stream(o["key"]):
                up.write(chunk)
            up.close()
        except BaseException:
            up.abort()
            raise
        out.append({"key": prefix + rel, "size": up.size, "sha256": up.sha.hexdigest(), "kind": "media",
                    "source": o["key"]})
    return out


def op_restore_media(p: dict[str, Any]) -> dict[str, Any]:
    """Put a backup's media back where the app reads it (the bucket's media_root/), by server-side copy.
    The controller has re-read and checked every object (verify) before anything live was touched; an
    object already identical (same size and ETag) is left alone. Media added since the backup stays
    (as the seed's `aws s3 sync` without --delete did): the restored database simply does not use it."""
    s3 = bucket(p)
    copied, same = [], 0
    for obj in p["objects"]:
        source = str(obj.get("source") or "")
        if not source.startswith(p["prefix"]) or ".." in source.split("/"):
            raise OpError(f"refusing media object with an unsafe target: {source!r}")
        have, want = s3.stat(source), s3.stat(obj["key"])
        if want is None:
            raise OpError(f"object '{obj['key']}' does not exist in the bucket")
        if have is not None and have == want:
            same += 1
            continue
        s3.copy(obj["key"], source)
        if s3.head(source) != int(obj["size"]):
            raise OpError(f"copying {obj['key']} to {source} did not give {obj['size']} bytes")
        copied.append(source)
    return {"copied": copied, "unchanged": same}


def _dump(s3: Any, p: dict[str, Any]) -> dict[str, Any]:
    db = p["db"]
    info = server_version(db)
    key = p["dump_key"]
    fmt = p.get("format", "custom")
    args = ["-d", db["database"], "--no-password"]
    # zlib level 1 by default: half the CPU time of pg_dump's default (6) for a dump ~7% larger; any
    # pg_restore reads it. Plain SQL stays uncompressed, as the seed's .sql dumps are
    args += ["-Fc", f"-Z{int(p.get('compress', 1))}"] if fmt == "custom" else ["-Fp"]
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


def _upload_dir(s3: Any, root: str, prefix: str) -> list[dict[str, Any]]:
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
    s3 = bucket(p)
    data = json.dumps(p["document"], indent=1, sort_keys=True).encode()
    s3.put(p["key"], data, "application/json")
    return {"key": p["key"], "size": len(data)}


def op_catalog(p: dict[str, Any]) -> dict[str, Any]:
    s3 = bucket(p)
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
    s3 = bucket(p)
    results = []
    for obj in p["objects"]:
        results.append(_verify_one(s3, p, obj))
    return {"results": results, "ok": all(r["ok"] for r in results)}


def _verify_one(s3: Any, p: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
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
    # the checksum comes first: a corrupted dump also makes pg_restore fail, but "corrupted" is the cause
    damage = corruption(obj, size, res["sha256"])
    if damage:
        res["error"] = damage + (f"; {res['error']}" if res.get("error") else "")
        res["corrupted"] = True
    elif "error" not in res:
        res["ok"] = True
        res["checked_sha"] = bool(obj.get("sha256"))
    return res


def corruption(obj: dict[str, Any], size: int, sha256: str) -> str:
    """Why an object read back is not the one the manifest describes ("" when it is, or is unknown)."""
    if obj.get("size") is not None and size != int(obj["size"]):
        return f"the object is corrupted: {size} bytes, the manifest says {obj['size']}"
    if obj.get("sha256") and sha256 != obj["sha256"]:
        return "the object is corrupted: its sha256 differs from the manifest (damaged or replaced in the bucket)"
    return ""


def op_inspect(p: dict[str, Any]) -> dict[str, Any]:
    """What one backup id consists of: from its manifest, or (seed/migration backups) by convention."""
    s3 = bucket(p)
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


class Spool:
    """A whole custom-format dump on local disk, where `pg_restore -j` can seek in it: the PostgreSQL
    container's /tmp (mode exec: pg_restore runs in that container) or the host's /var/tmp (mode local).
    The file is 0600 and removed whatever happens (remove() in a finally)."""

    def __init__(self, db: dict[str, Any], name: str) -> None:
        self.db = db
        self.container = db["container"] if db["mode"] == "exec" else ""
        self.path = os.path.join("/tmp" if self.container else "/var/tmp", f"omldeploy-{name}.dump")

    def free(self) -> int:
        """Bytes free where the file goes (0 when that cannot be told: then the dump streams)."""
        if not self.container:
            st = os.statvfs(os.path.dirname(self.path))
            return st.f_bavail * st.f_frsize
        proc = subprocess.run(["podman", "exec", self.container, "df", "-Pk", "/tmp"], capture_output=True,
                              text=True, timeout=60)
        rows = proc.stdout.strip().splitlines()
        try:
            return int(rows[-1].split()[3]) * 1024 if proc.returncode == 0 else 0
        except (IndexError, ValueError):
            return 0

    def writer(self) -> subprocess.Popen[bytes]:
        inner = 'umask 077 && exec cat > "$1"'
        argv = (["podman", "exec", "-i", self.container, "sh", "-c", inner, "sh", self.path] if self.container
                else ["sh", "-c", inner, "sh", self.path])
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def remove(self) -> None:
        if self.container:
            subprocess.run(["podman", "exec", self.container, "rm", "-f", self.path], capture_output=True, timeout=120)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


#: room left beside a spooled dump: PostgreSQL's own files share that disk
SPOOL_MARGIN = 256 * 1024 * 1024


def restore_jobs(p: dict[str, Any]) -> int:
    jobs = int(p.get("jobs") or 0)
    return jobs if jobs > 0 else max(1, min(4, os.cpu_count() or 1))


def op_restore_db(p: dict[str, Any]) -> dict[str, Any]:
    """Load the dump into a fresh scratch database. The live database is not touched; on any failure
    (download, sha256, restore error) the scratch database is dropped. A custom-format dump is spooled and
    restored with `pg_restore -j` where there are CPUs and room for it (see the module docstring)."""
    s3 = bucket(p)
    db = p["db"]
    scratch = p["scratch"]
    obj = p["object"]
    key = obj["key"]
    psql(db, f"DROP DATABASE IF EXISTS {ident(scratch)};\n")
    psql(db, f"CREATE DATABASE {ident(scratch)} TEMPLATE template0;\n")
    t0 = time.monotonic()
    size = int(obj.get("size") or 0)
    jobs = restore_jobs(p)
    spool = Spool(db, scratch) if db["mode"] in ("exec", "local") and jobs > 1 else None
    if spool is not None and spool.free() < size + SPOOL_MARGIN:
        spool = None
    try:
        chunks = prefetch(s3.stream(key))
        first = next(chunks, b"")
        fmt = dump_format(first)
        if fmt == "custom" and spool is not None:
            try:
                got = _spooled(db, p, obj, first, chunks, spool, scratch, jobs)
            finally:
                spool.remove()
        else:
            got = _streamed(db, p, obj, first, chunks, fmt, scratch)
            jobs = 1
        stats = psql(db, "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN "
                         "('pg_catalog','information_schema');", database=scratch).strip()
    except BaseException:
        with contextlib.suppress(OpError):
            psql(db, f"DROP DATABASE IF EXISTS {ident(scratch)};\n")
        raise
    return {"key": key, "format": fmt, "size": got["size"], "sha256": got["sha256"],
            "checked_sha": bool(obj.get("sha256")), "seconds": round(time.monotonic() - t0, 2), "jobs": jobs,
            "download_seconds": got.get("download_seconds"), "tables": int(stats or 0),
            "warnings": got["warnings"][-1500:]}


class Hashed:
    """The dump's bytes as they go by a consumer: sha256, size and the progress file."""

    def __init__(self, progress: Progress) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def __call__(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.size += len(chunk)
        self.progress.update(self.size)


def fed(first: bytes, chunks: Iterator[bytes], proc: subprocess.Popen[bytes], seen: Hashed) -> bool:
    """Every chunk (the peeked first one, then the rest) into proc's stdin; see feed()."""
    def all_chunks() -> Iterator[bytes]:
        yield first
        yield from chunks

    try:
        return feed(all_chunks(), proc, seen)  # reads the object to its end even if the tool quits
    except BaseException:
        proc.kill()
        raise


def _spooled(db: dict[str, Any], p: dict[str, Any], obj: dict[str, Any], first: bytes, chunks: Iterator[bytes],
             spool: Spool, scratch: str, jobs: int) -> dict[str, Any]:
    """Download whole, prove the sha256, then `pg_restore -j`: a damaged dump restores nothing at all."""
    key = obj["key"]
    t0 = time.monotonic()
    progress = Progress(p["tenant"], "download", int(obj.get("size") or 0))
    seen = Hashed(progress)
    try:
        proc = spool.writer()
        err = Tail(proc.stderr)
        complete = fed(first, chunks, proc, seen)
        if proc.wait() != 0 or not complete:
            raise OpError(f"could not write {key} to {spool.path} for pg_restore -j: {err.text()}")
    finally:
        progress.done()
    download = time.monotonic() - t0
    damage = corruption(obj, seen.size, seen.sha.hexdigest())
    if damage:
        raise OpError(f"{key}: {damage}; nothing was restored")
    progress = Progress(p["tenant"], f"pg_restore -j {jobs}", 0)
    try:
        progress.update(0, force=True)
        argv = pg_argv(db, "pg_restore", ["--no-owner", "--no-acl", "--exit-on-error", "-j", str(jobs), "-d", scratch,
                                          spool.path], interactive=False)
        proc2 = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=86400)
    finally:
        progress.done()
    if proc2.returncode != 0:
        raise OpError(f"pg_restore failed restoring {key} ({proc2.returncode}): {clean(proc2.stderr)}")
    return {"size": seen.size, "sha256": seen.sha.hexdigest(), "download_seconds": round(download, 2),
            "warnings": clean(proc2.stderr)}


def _streamed(db: dict[str, Any], p: dict[str, Any], obj: dict[str, Any], first: bytes, chunks: Iterator[bytes],
              fmt: str, scratch: str) -> dict[str, Any]:
    """The dump flows from the bucket into pg_restore/psql as it downloads (sha256 checked at the end)."""
    key = obj["key"]
    progress = Progress(p["tenant"], "restore", int(obj.get("size") or 0))
    seen = Hashed(progress)
    try:
        if fmt == "custom":
            argv = pg_argv(db, "pg_restore", ["--no-owner", "--no-acl", "--exit-on-error", "-d", scratch])
        else:
            argv = pg_argv(db, "psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scratch, "-f", "-"])
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = Tail(proc.stdout), Tail(proc.stderr)
        complete = fed(first, chunks, proc, seen)
        rc = proc.wait()
        out.text()
    finally:
        progress.done()
    what = "pg_restore" if fmt == "custom" else "psql"
    # checksum first: a damaged dump also makes the tool fail, but its error hides the cause
    damage = corruption(obj, seen.size, seen.sha.hexdigest())
    if damage:
        raise OpError(f"{key}: {damage}; nothing was restored" + (f" ({what} also failed on it)" if rc != 0 else ""))
    if rc != 0:
        raise OpError(f"{what} failed restoring {key} ({rc}): {err.text()}")
    if not complete:
        raise OpError(f"the restore stopped reading {key} before its end")
    return {"size": seen.size, "sha256": seen.sha.hexdigest(), "warnings": err.text()}


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
    # one psql per attempt (each is a container start inside the outage): the earlier previous database
    # goes first (DROP DATABASE cannot run in a transaction), then both renames in one transaction
    drop = kill + f"DROP DATABASE IF EXISTS {ident(previous)};\n" if live in names else ""
    last = ""
    for _ in range(10):
        sql = drop + kill + "BEGIN;\n"
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
    s3 = bucket(p)
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
            damage = corruption(obj, len(data), hashlib.sha256(data).hexdigest())
            if damage:
                raise OpError(f"{obj['key']}: {damage}")
            path = os.path.join(staging, rel)
            mode = int(obj.get("mode") or "0644", 8) & 0o777
            safefs.write_atomic(path, data, mode, owner=None)  # never through a symlink (issue 12 M6)
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
    units = list(p.get("stop", []))
    if units:  # one systemd transaction: the units stop in parallel, not one after the other
        t0 = time.monotonic()
        proc = subprocess.run(["systemctl", "stop", *[f"{u}.service" for u in units]], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise OpError(f"cannot stop {', '.join(units)}: {clean(proc.stderr)}")
        out["stopped"] = units
        out["stop_seconds"] = round(time.monotonic() - t0, 2)
    for container in p.get("dialplan_reload", []):
        proc = subprocess.run(["podman", "exec", container, "asterisk", "-rx", "dialplan reload"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise OpError(f"dialplan reload in {container} failed: {clean(proc.stderr or proc.stdout)}")
        out["reloaded"].append(container)
    return out


def op_delete(p: dict[str, Any]) -> dict[str, Any]:
    s3 = bucket(p)
    deleted = []
    for key in p["keys"]:
        s3.delete(key)
        deleted.append(key)
    return {"deleted": deleted}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "probe": op_probe, "backup": op_backup, "put_json": op_put_json, "catalog": op_catalog, "verify": op_verify,
    "inspect": op_inspect, "restore_db": op_restore_db, "swap_db": op_swap_db, "drop_scratch": op_drop_scratch,
    "stage_files": op_stage_files, "unstage": op_unstage, "swap_files": op_swap_files, "units": op_units,
    "delete": op_delete, "restore_media": op_restore_media,
}

READ_ONLY = ("catalog", "inspect")


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
            "compress": {"type": "int", "default": 1},  # backup: pg_dump -Z for the custom format
            "jobs": {"type": "int", "default": 0},  # restore_db: pg_restore -j (0: one per CPU, at most 4)
            "dialplan_reload": {"type": "list", "elements": "str", "default": []},
            "media": {"type": "raw"},  # catalog: count media_root/ (bool); backup: {"source", "prefix"}
        },
        # a read-only listing may sit in a check-mode run (fleet status: drift + status + catalog in one
        # run); every other op refuses check mode rather than pretend
        supports_check_mode=True,
    )
    p = dict(module.params)
    if p.get("s3") is not None:
        p["s3"] = {**p["s3"], "secret_key": p.get("s3_secret_key") or ""}
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", p["tenant"]):
        module.fail_json(msg="bad tenant name", report={"failed": True})
    if module.check_mode and p["op"] not in READ_ONLY:
        module.fail_json(msg=f"op {p['op']} changes things: not run in check mode", report={"failed": True})
    try:
        report = OPS[p["op"]](p)
    except (OpError, OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(msg=str(exc), report={"failed": True, "error": str(exc), "s3_retries": NOTES[-50:]})
    report["s3_retries"] = NOTES[-50:]
    module.exit_json(changed=p["op"] not in ("probe", "catalog", "verify", "inspect"), report=report)


if __name__ == "__main__":
    main()
