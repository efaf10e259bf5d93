"""Probe loops for the failover tests: through the VIPs, every 100 ms, bounded in time, from the
controller (as a client on the tenant's LAN would be).

    with Probes(tenant, sb, https=True, pg=True, redis=True) as p:
        ...inflict the failure, wait for recovery...
    p.pg.failed, p.pg.longest_outage, p.pg.acked   # per-kind figures

Each kind runs in its own thread so that a hanging connect in one never delays the others:
  https  GET https://<web VIP>/health verified against the tenant CA;
  pg     a committed INSERT through the RW VIP (one connection, re-opened after any error);
  redis  SET through HAProxy's Redis port on the web VIP, acknowledged with +OK; then
         with redis_wait=True also `WAIT 1 500`, so that only writes a replica holds count.
A write counts as acknowledged only when the server said so; the tests check afterwards that every
acknowledged write is still there.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from omldeploy.inventory import Tenant
from omldeploy.render import material
from omldeploy.sandbox import Sandbox

from .common import vips

EVERY = 0.1
PG_TABLE = "ha_probe_writes"


@dataclass
class Series:
    """One probe kind's record."""

    kind: str
    attempts: int = 0
    failed: int = 0
    longest_outage: float = 0.0
    acked: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    _down_since: float | None = None
    _last_ok: float | None = None

    def ok(self, now: float, n: int | None = None) -> None:
        self.attempts += 1
        if n is not None:
            self.acked.append(n)
        if self._down_since is not None:
            self.longest_outage = max(self.longest_outage, now - self._down_since)
            self._down_since = None
        self._last_ok = now

    def fail(self, now: float, exc: BaseException) -> None:
        self.attempts += 1
        self.failed += 1
        key = type(exc).__name__
        self.errors[key] = self.errors.get(key, 0) + 1
        if self._down_since is None:
            # the outage began right after the last success (or at this attempt when none came before)
            self._down_since = self._last_ok if self._last_ok is not None else now

    def close(self, now: float) -> None:
        if self._down_since is not None:
            self.longest_outage = max(self.longest_outage, now - self._down_since)

    def summary(self) -> str:
        return (f"{self.kind}: {self.failed}/{self.attempts} failed, longest outage {self.longest_outage:.1f} s"
                + (f" ({', '.join(f'{k} x{v}' for k, v in sorted(self.errors.items()))})" if self.errors else ""))


def _resp(*parts: str) -> bytes:
    out = f"*{len(parts)}\r\n".encode()
    for p in parts:
        b = p.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def redis_call(host: str, port: int, *cmds: tuple[str, ...], timeout: float = 1.0, password: str = "") -> list[bytes]:
    """Send commands on one connection; return each reply's first line (enough for +OK / :n / $n).
    With a password, AUTH goes first and its reply is checked, not returned."""
    if password:
        auth, *rest = redis_call(host, port, ("AUTH", password), *cmds, timeout=timeout)
        if auth != b"+OK":
            raise ConnectionError(f"redis refused AUTH: {auth[:60]!r}")
        return rest
    with socket.create_connection((host, port), timeout) as conn:
        conn.settimeout(timeout)
        conn.sendall(b"".join(_resp(*c) for c in cmds))
        buf = b""
        replies: list[bytes] = []
        while len(replies) < len(cmds):
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            buf += chunk
            while b"\r\n" in buf and len(replies) < len(cmds):
                line, buf = buf.split(b"\r\n", 1)
                if line.startswith(b"$") and int(line[1:]) >= 0:  # bulk string: skip its payload line
                    while b"\r\n" not in buf:
                        more = conn.recv(4096)
                        if not more:
                            raise ConnectionError("redis closed the connection")
                        buf += more
                    payload, buf = buf.split(b"\r\n", 1)
                    line = line + b" " + payload
                replies.append(line)
        return replies


class Probes:
    def __init__(self, tenant: Tenant, sb: Sandbox, *, https: bool = True, pg: bool = True,
                 redis: bool = False, redis_key: str = "probe", redis_wait: bool = False) -> None:
        self.tenant = tenant
        self.v = vips(sb)
        self.https = Series("https")
        self.pg = Series("pg")
        self.redis = Series("redis")
        self.redis_key = redis_key
        self.redis_wait = redis_wait
        self.redis_password = material.tenant_secrets(tenant.folder).get("redis_password", "")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        loops: list[tuple[Series, Callable[[int], bool]]] = []
        if https:
            loops.append((self.https, self._https()))
        if pg:
            loops.append((self.pg, self._pg()))
        if redis:
            loops.append((self.redis, self._redis))
        for series, step in loops:
            self._threads.append(threading.Thread(target=self._loop, args=(series, step), daemon=True))

    # --- one attempt of each kind; True when the attempt carried a write that was acknowledged
    def _https(self) -> Callable[[int], bool]:
        ctx = ssl.create_default_context(cafile=str(self.tenant.folder / ".omldeploy/pki/ca.pem"))
        url = f"https://{self.v['web']}/health"

        def step(_n: int) -> bool:
            with urllib.request.urlopen(url, context=ctx, timeout=1.0) as resp:
                resp.read()
            return False
        return step

    def _pg(self) -> Callable[[int], bool]:
        import psycopg

        s = self.tenant.settings
        conninfo = dict(host=self.v["rw"], dbname=s.text("postgres_database"), user=s.text("postgres_user"),
                        password=s.text("postgres_password"), connect_timeout=2,
                        options="-c statement_timeout=1000", tcp_user_timeout=1000)
        with psycopg.connect(**conninfo, autocommit=True) as c:  # type: ignore[arg-type]
            c.execute(f"CREATE TABLE IF NOT EXISTS {PG_TABLE} (n bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        conn: list[psycopg.Connection[tuple[object, ...]]] = []

        def step(n: int) -> bool:
            try:
                if not conn:
                    conn.append(psycopg.connect(**conninfo, autocommit=True))  # type: ignore[arg-type]
                conn[0].execute(f"INSERT INTO {PG_TABLE} (n) VALUES (%s)", (n,))
            except Exception:
                if conn:
                    conn.pop().close()
                raise
            return True
        return step

    def _redis(self, n: int) -> bool:
        cmds: list[tuple[str, ...]] = [("SET", f"{self.redis_key}:{n}", str(n))]
        if self.redis_wait:
            cmds.append(("WAIT", "1", "500"))
        replies = redis_call(self.v["web"], 6379, *cmds, password=self.redis_password)
        if replies[0] != b"+OK":
            raise ConnectionError(replies[0].decode(errors="replace"))
        if self.redis_wait and (waited := replies[1]) != b":1":
            raise ConnectionError(f"WAIT: {waited.decode(errors='replace')} replica(s) acknowledged")
        return True

    def _loop(self, series: Series, step: Callable[[int], bool]) -> None:
        n = int(time.time() * 1000) * 10  # unique across loops of one test run
        nxt = time.monotonic()
        while not self._stop.is_set():
            n += 1
            try:
                wrote = step(n)
            except Exception as exc:  # every failure is data here
                series.fail(time.monotonic(), exc)
            else:
                series.ok(time.monotonic(), n if wrote else None)
            nxt += EVERY
            self._stop.wait(max(0.0, nxt - time.monotonic()))
        series.close(time.monotonic())

    def __enter__(self) -> Probes:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def summary(self) -> str:
        return "; ".join(s.summary() for s in (self.https, self.pg, self.redis) if s.attempts)


def more_answers(series: Series, n: int = 5, timeout: float = 30.0) -> None:
    """Wait (bounded) until `series` made `n` more attempts: probes running before a failure, or a few
    answers after a recovery so the figures cover its end. A readiness wait, not a fixed sleep."""
    start, end = series.attempts, time.monotonic() + timeout
    while series.attempts < start + n:
        if time.monotonic() > end:
            raise AssertionError(f"{series.kind}: no {n} more probe attempts within {timeout:.0f} s")
        time.sleep(0.05)
