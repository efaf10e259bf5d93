#!/usr/bin/env python3
"""keepalived health checks for omldeploy (vrrp_script), Python standard library only.

Runs inside the keepalived container (the osixia image's entrypoint tool is Python 3 too), so it needs
no client program from any other image:
  oml_check.py tcp HOST PORT [BANNER]     TCP connect; with BANNER, the first line must contain it
  oml_check.py pg primary|standby|up USER DB
      asks PostgreSQL over its unix socket (/run/postgresql, shared with the PostgreSQL container; local
      connections are `trust`, so no password exists here) for `pg_is_in_recovery()`
  oml_check.py state FILE WORD            the file's first word is WORD: keepalived's own last state of an
      instance (written by its notify), so a positive weight makes the node that holds a role keep it
Exit 0 = healthy. Every check is bounded by a 2 s timeout.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

SOCKET = "/run/postgresql/.s.PGSQL.5432"
TIMEOUT = 2.0


def tcp(host: str, port: int, banner: str = "") -> bool:
    with socket.create_connection((host, port), TIMEOUT) as conn:
        if not banner:
            return True
        conn.settimeout(TIMEOUT)
        return banner.encode() in conn.recv(256)


def _messages(conn: socket.socket) -> list[tuple[bytes, bytes]]:
    """Read backend messages until ReadyForQuery ('Z') or an ErrorResponse ('E')."""
    buf = b""
    out: list[tuple[bytes, bytes]] = []
    while True:
        while len(buf) >= 5:
            kind, size = buf[:1], struct.unpack("!i", buf[1:5])[0]
            if len(buf) < 1 + size:
                break
            out.append((kind, buf[5:1 + size]))
            buf = buf[1 + size:]
            if kind in (b"Z", b"E"):
                return out
        chunk = conn.recv(4096)
        if not chunk:
            return out
        buf += chunk


def in_recovery(user: str, db: str) -> bool | None:
    """pg_is_in_recovery() of the local server, or None when it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(TIMEOUT)
            conn.connect(SOCKET)
            params = b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0application_name\0" \
                b"keepalived-check\0\0"
            conn.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            msgs = _messages(conn)
            if not msgs or msgs[-1][0] != b"Z" or (b"R", b"\0\0\0\0") not in msgs:
                return None
            query = b"SELECT pg_is_in_recovery()\0"
            conn.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
            rows = [body for kind, body in _messages(conn) if kind == b"D"]
            conn.sendall(b"X\0\0\0\4")
            if len(rows) != 1:
                return None
            ncols, size = struct.unpack("!hi", rows[0][:6])
            return ncols == 1 and rows[0][6:6 + size] == b"t"
    except (OSError, struct.error):
        return None


def started_at(pid: int = 1) -> float:
    """Epoch seconds at which `pid` started: in the container, PID 1 is keepalived's own start."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after the command name
    with open("/proc/stat", encoding="ascii") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def state_is(path: str, word: str) -> bool:
    """The instance state keepalived last wrote (see the template's `notify`) is `word`, and was
    written by this run of keepalived: a file left by a run that crashed (the state folder is on the
    host and outlives the container) must not count."""
    try:
        if os.stat(path).st_mtime < started_at() - 1:  # btime has a 1 s resolution
            return False
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(64).split()[:1] == [word]
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["tcp"] and len(argv) in (3, 4):
            return 0 if tcp(argv[1], int(argv[2]), argv[3] if len(argv) == 4 else "") else 1
        if argv[:1] == ["state"] and len(argv) == 3:
            return 0 if state_is(argv[1], argv[2]) else 1
        if argv[:1] == ["pg"] and len(argv) == 4:
            state = in_recovery(argv[2], argv[3])
            wanted = {"primary": state is False, "standby": state is True, "up": state is not None}
            return 0 if wanted[argv[1]] else 1
    except (OSError, ValueError, KeyError):
        return 1
    print(f"usage: {sys.argv[0]} tcp HOST PORT [BANNER] | pg primary|standby|up USER DB | "
          "state FILE WORD", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
