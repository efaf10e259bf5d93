"""A minimal PostgreSQL client (protocol 3.0), Python standard library only.

Why not psql: the HA helpers that use it run where no PostgreSQL client exists and none may be
installed: keepalived's health check inside the keepalived container, and the split-brain guard on the
host itself (it must keep working while the PostgreSQL container is stopped). They need one query with
a short timeout, over the local unix socket (trust) or TCP with a password (SCRAM-SHA-256, as the rendered pg_hba.conf
asks; md5 is not spoken).

    rows = query("SELECT pg_is_in_recovery()", unix="/run/postgresql/.s.PGSQL.5432", user="u", db="d")
    rows = query("SELECT 1", host="10.0.0.2", user="repmgr", db="repmgr", password=pw)

Values come back as text (None for NULL). Errors raise PgError (server said no) or OSError (network).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct


class PgError(Exception):
    """The server answered with an error (authentication, SQL)."""


def _send(conn: socket.socket, kind: bytes, body: bytes) -> None:
    conn.sendall(kind + struct.pack("!i", 4 + len(body)) + body)


def _read(conn: socket.socket, buf: bytearray) -> tuple[bytes, bytes]:
    """One backend message (kind, body)."""
    while True:
        if len(buf) >= 5:
            size = struct.unpack("!i", bytes(buf[1:5]))[0]
            if size < 4 or size > 1 << 24:
                raise PgError(f"malformed message (length {size})")
            if len(buf) >= 1 + size:
                kind, body = bytes(buf[:1]), bytes(buf[5:1 + size])
                del buf[:1 + size]
                return kind, body
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk


def _error_text(body: bytes) -> str:
    fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
    return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', '?')}"


def _scram(conn: socket.socket, buf: bytearray, user: str, password: str) -> None:
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    _send(conn, b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
    kind, body = _read(conn, buf)
    if kind == b"E":
        raise PgError(_error_text(body))
    if kind != b"R" or struct.unpack("!i", body[:4])[0] != 11:
        raise PgError("unexpected SCRAM step")
    server_first = body[4:].decode()
    attrs = dict(item.split("=", 1) for item in server_first.split(","))
    if not attrs["r"].startswith(nonce):
        raise PgError("SCRAM nonce mismatch")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_msg = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored, auth_msg, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    _send(conn, b"p", f"{without_proof},p={proof}".encode())
    kind, body = _read(conn, buf)
    if kind == b"E":
        raise PgError(_error_text(body))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    expected = base64.b64encode(hmac.new(server_key, auth_msg, "sha256").digest()).decode()
    if kind != b"R" or body[4:].decode() != f"v={expected}":
        raise PgError("server's SCRAM signature does not verify")


def _startup(conn: socket.socket, buf: bytearray, user: str, db: str, password: str | None) -> None:
    params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in (
        (b"user", user), (b"database", db), (b"application_name", "omldeploy-ha")))
    body = struct.pack("!i", 196608) + params + b"\0"
    conn.sendall(struct.pack("!i", 4 + len(body)) + body)
    while True:
        kind, body = _read(conn, buf)
        if kind == b"E":
            raise PgError(_error_text(body))
        if kind == b"Z":
            return
        if kind != b"R":
            continue  # ParameterStatus, BackendKeyData, notices
        code = struct.unpack("!i", body[:4])[0]
        if code == 0:
            continue
        if password is None:
            raise PgError(f"server asks for a password (method {code}) and none is known")
        if code == 3:
            _send(conn, b"p", password.encode() + b"\0")
        elif code == 10:
            if b"SCRAM-SHA-256" not in body[4:].split(b"\0"):
                raise PgError("server offers no SCRAM-SHA-256")
            _scram(conn, buf, user, password)
        else:
            raise PgError(f"unsupported authentication method {code}")


def query(sql: str, *, user: str, db: str, unix: str | None = None, host: str | None = None,
          port: int = 5432, password: str | None = None, timeout: float = 2.0) -> list[tuple[str | None, ...]]:
    """Run one simple query; every step is bounded by `timeout`."""
    if unix:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout)
        try:
            conn.connect(unix)
        except OSError:
            conn.close()
            raise
    elif host:
        conn = socket.create_connection((host, port), timeout)
        conn.settimeout(timeout)
    else:
        raise ValueError("query needs unix= or host=")
    with conn:
        buf = bytearray()
        _startup(conn, buf, user, db, password)
        _send(conn, b"Q", sql.encode() + b"\0")
        rows: list[tuple[str | None, ...]] = []
        error = ""
        while True:
            kind, body = _read(conn, buf)
            if kind == b"D":
                n = struct.unpack("!h", body[:2])[0]
                pos = 2
                row: list[str | None] = []
                for _ in range(n):
                    size = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + size].decode(errors="replace"))
                        pos += size
                rows.append(tuple(row))
            elif kind == b"E":
                error = _error_text(body)
            elif kind == b"Z":
                break
        conn.sendall(b"X\0\0\0\4")
        if error:
            raise PgError(error)
        return rows


def pgpass_password(path: str, user: str) -> str | None:
    """The password for `user` in a .pgpass file (any host/port/database), or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if not line or line.startswith("#"):
            continue
        fields: list[str] = []
        cur, esc = "", False
        for ch in line:
            if esc:
                cur, esc = cur + ch, False
            elif ch == "\\":
                esc = True
            elif ch == ":" and len(fields) < 4:
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        if len(fields) == 5 and fields[3] in (user, "*"):
            return fields[4]
    return None
