#!/usr/bin/env python3
"""keepalived health checks for omldeploy (vrrp_script), Python standard library only.

Runs inside the keepalived container (the osixia image's entrypoint tool is Python 3 too), so it needs
no client program from any other image:
  oml_check.py tcp HOST PORT [BANNER]     TCP connect; with BANNER, the first line must contain it
  oml_check.py pg primary|standby|up USER DB [OK_FILE]
      asks PostgreSQL over its unix socket (/run/postgresql, shared with the PostgreSQL container; local
      connections are `trust`, so no password exists here) for `pg_is_in_recovery()` (oml_pgwire.py);
      with OK_FILE, also fails while that file is missing (the split-brain guard's confirmation)
  oml_check.py state FILE WORD            the file's first word is WORD: keepalived's own last state of an
      instance (written by its notify), so a positive weight makes the node that holds a role keep it
Exit 0 = healthy. A tcp check is bounded by 2 s, a pg check by 4 s.
"""

from __future__ import annotations

import os
import socket
import sys

SOCKET = "/run/postgresql/.s.PGSQL.5432"
TIMEOUT = 2.0
PG_TIMEOUT = 4.0  # below keepalived's script timeout for the pg checks (5 s)


def tcp(host: str, port: int, banner: str = "") -> bool:
    with socket.create_connection((host, port), TIMEOUT) as conn:
        if not banner:
            return True
        conn.settimeout(TIMEOUT)
        return banner.encode() in conn.recv(256)


def in_recovery(user: str, db: str) -> bool | None:
    """pg_is_in_recovery() of the local server, or None when it does not answer."""
    from oml_pgwire import PgError, query  # type: ignore[import-not-found]  # beside this file (data nodes)

    try:
        rows = query("SELECT pg_is_in_recovery()", unix=SOCKET, user=user, db=db, timeout=PG_TIMEOUT)
    except (OSError, PgError):
        return None
    return rows[0][0] == "t" if len(rows) == 1 else None


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
        if argv[:1] == ["pg"] and len(argv) in (4, 5):
            if len(argv) == 5 and not os.path.exists(argv[4]):
                return 1  # the split-brain guard has not confirmed this node's right to serve
            state = in_recovery(argv[2], argv[3])
            wanted = {"primary": state is False, "standby": state is True, "up": state is not None}
            return 0 if wanted[argv[1]] else 1
    except (OSError, ValueError, KeyError):
        return 1
    print(f"usage: {sys.argv[0]} tcp HOST PORT [BANNER] | pg primary|standby|up USER DB [OK_FILE] | "
          "state FILE WORD", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
