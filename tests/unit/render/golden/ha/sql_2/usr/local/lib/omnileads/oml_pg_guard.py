#!/usr/bin/env python3
"""Split-brain guard for an HA PostgreSQL node (runs on the host, Python standard library only).

repmgrd promotes the standby when the primary is gone, but nothing in repmgr stops an old primary that
comes back (after a power-off, a crash, or a healed network partition) from accepting writes again,
and keepalived alone would give it the RW VIP back (it has the higher priority). This guard closes
that hole. Every second, on each data node:

  - local standby, or PostgreSQL down: nothing to guard; the primary right (OK_FILE) is withdrawn.
  - local primary: ask the peer (over TCP, with the repmgr credentials).
      * peer is a standby                  -> this node may serve: OK_FILE is written.
      * peer is a primary on a newer timeline (it was promoted while this node was gone), or on the
        same timeline while this node is the `backup` one -> FENCE this node.
      * peer unreachable: if any other host of the tenant answers, the peer is the one that is gone
        and this node may serve. If nobody answers for ISOLATED seconds, this node is the isolated one
        (its link is cut): FENCE it, before the other side's repmgrd (reconnect_attempts x
        reconnect_interval, longer than ISOLATED) can promote the standby.
  - A node that has just been promoted (it was a standby in the previous round) may serve at once:
    repmgrd's failover validation already checked that it is not the isolated one.

keepalived's PG_RW check requires OK_FILE besides the primary role, so a node holds the RW VIP only
once the guard has seen that the peer is not a newer primary. OK_FILE is in /run (gone after a reboot),
so a returning node never starts with the right to serve.

Fencing = a persistent marker (FENCE_FILE, with the reason) + PostgreSQL and repmgrd stopped (fast
shutdown: open sessions end at once). The PostgreSQL unit's ExecStartPre (`gate`) refuses to start
while the marker exists, also at boot, so the node stays fenced until a recovery action rejoins it as a
standby and removes the marker. The guard's decisions are logged to the journal (oml-pg-guard).

    oml_pg_guard.py run CONFIG     the loop (unit oml-pg-guard.service)
    oml_pg_guard.py gate CONFIG    exit 1 with the reason when fenced (PostgreSQL's ExecStartPre)
    oml_pg_guard.py once CONFIG    one round, printed as JSON (tests, diagnostics)
    oml_pg_guard.py check CONFIG   validate the config file and exit (0 = usable)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oml_pgwire import PgError, pgpass_password, query  # type: ignore[import-not-found]

INTERVAL = 1.0
ISOLATED = 2.0
TIMEOUT = 1.0
ROLE_SQL = ("SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL "
            "ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def role(**conn: Any) -> tuple[str, int] | None:
    """('primary', timeline) / ('standby', 0), or None when the server does not answer."""
    try:
        rows = query(ROLE_SQL, timeout=TIMEOUT, **conn)
    except (OSError, PgError, ValueError):
        return None
    if len(rows) != 1:
        return None
    standby, wal = rows[0]
    if standby == "t":
        return ("standby", 0)
    return ("primary", int(wal or "0", 16))


def answers(host: str, port: int) -> bool:
    """The host is up on the network: it accepted or actively refused a TCP connection."""
    try:
        socket.create_connection((host, port), TIMEOUT).close()
        return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


class Guard:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.fence_file: str = cfg["fence_file"]
        self.ok_file: str = cfg["ok_file"]
        self.isolated_since: float | None = None
        self.last_local: str | None = None
        self.down_rounds = 0
        self.said = ""
        self.sweep = ThreadPoolExecutor(max_workers=max(1, len(cfg["witnesses"])))

    # --- facts
    def local(self) -> tuple[str, int] | None:
        return role(unix=self.cfg["socket"], user=self.cfg["user"], db=self.cfg["db"])

    def peer(self) -> tuple[str, int] | None:
        pw = pgpass_password(self.cfg["pgpass"], "repmgr")
        return role(host=self.cfg["peer"], port=int(self.cfg.get("peer_port", 5432)), user="repmgr",
                    db="repmgr", password=pw)

    def anyone(self) -> bool:
        futures = [self.sweep.submit(answers, h, int(p)) for h, p in self.cfg["witnesses"]]
        return any(f.result() for f in futures)

    def note(self, key: str, msg: str) -> None:
        """Log a decision once, when it changes (the loop runs every second)."""
        if key != self.said:
            self.said = key
            log(msg)

    # --- actions
    def allow(self, yes: bool) -> None:
        if yes and not os.path.exists(self.ok_file):
            os.makedirs(os.path.dirname(self.ok_file), exist_ok=True)
            with open(self.ok_file, "w", encoding="utf-8") as fh:
                fh.write(f"{time.time():.0f}\n")
            self.note("ok", "primary confirmed: the peer is not a newer primary; this node may hold the RW VIP")
        elif not yes and os.path.exists(self.ok_file):
            os.unlink(self.ok_file)

    def fence(self, reason: str) -> None:
        self.allow(False)
        os.makedirs(os.path.dirname(self.fence_file), mode=0o700, exist_ok=True)
        record = {"reason": reason, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "node": self.cfg["node"]}
        tmp = self.fence_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp, self.fence_file)
        log(f"FENCED: {reason}. PostgreSQL is stopped and stays stopped until this node is rejoined "
            f"as a standby (recovery action), which removes {self.fence_file}")
        # as rendered: fast shutdown first (open sessions end at once), then the units (no restart, no repmgrd)
        for argv in self.cfg["fence_commands"]:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode:
                log(f"fence step {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")

    # --- one round
    def round(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fenced": os.path.exists(self.fence_file)}
        if out["fenced"]:
            self.allow(False)
            return out
        local = self.local()
        out["local"] = local
        was = self.last_local
        self.last_local = local[0] if local else None
        if local is None:
            # a slow answer is not a lost role: keepalived's own check already fails while PostgreSQL is
            # down; the right is withdrawn after 2 silent rounds (a promotion elsewhere takes longer)
            self.down_rounds += 1
            if self.down_rounds >= 2:
                self.allow(False)
                self.note("down", "PostgreSQL does not answer")
            self.last_local = was if self.down_rounds < 2 else None
            self.isolated_since = None
            return out
        self.down_rounds = 0
        if local[0] != "primary":
            self.allow(False)
            self.isolated_since = None
            self.note("standby", "this node is a standby")
            return out
        if was == "standby":
            self.note("promoted", "this node was just promoted: it may serve")
            self.allow(True)
        peer = self.peer()
        out["peer"] = peer
        if peer is not None:
            self.isolated_since = None
            if peer[0] == "primary":
                older = local[1] < peer[1] or (local[1] == peer[1] and self.cfg["ha_role"] == "backup")
                if older:
                    self.fence(f"{self.cfg['peer_name']} ({self.cfg['peer']}) is primary on timeline {peer[1]}, "
                               f"this node on timeline {local[1]}: it was promoted while this node was away, "
                               "so this node's data has diverged")
                    out["fenced"] = True
                    return out
                self.note("newer", f"two primaries: {self.cfg['peer_name']} (timeline {peer[1]}) must fence "
                          f"itself; this node (timeline {local[1]}) keeps serving")
            self.allow(True)
            return out
        # only when the peer is silent: sweeping the other hosts every second would knock on their SSH
        # port (a log line there each time) for nothing. The sweep is parallel and bounded (TIMEOUT), so
        # the isolation verdict still comes seconds before the other side's repmgrd may promote (~12 s).
        if not self.cfg["witnesses"]:
            # two nodes and no witness: isolation cannot be told from a dead peer. Serving on keeps the
            # service up when the peer dies; after a partition the timeline rule above fences whichever
            # side is older once they meet again.
            self.isolated_since = None
            self.note("alone", f"{self.cfg['peer_name']} does not answer and no witness is configured: serving alone")
            self.allow(True)
            return out
        if self.anyone():
            self.isolated_since = None
            self.note("alone", f"{self.cfg['peer_name']} does not answer, other tenant hosts do: serving alone")
            self.allow(True)  # the peer is the one that is gone
            return out
        now = time.monotonic()
        self.isolated_since = self.isolated_since or now
        out["isolated_for"] = now - self.isolated_since
        self.note("isolated", "nobody answers: this node may be the isolated one")
        if now - self.isolated_since >= ISOLATED:
            self.fence(f"isolated: neither {self.cfg['peer_name']} nor any of "
                       f"{len(self.cfg['witnesses'])} other tenant hosts answered for {ISOLATED:.0f} s; "
                       "the other side may promote its standby")
            out["fenced"] = True
        return out


KEYS: dict[str, type] = {"node": str, "ha_role": str, "peer": str, "peer_name": str, "witnesses": list,
                         "socket": str, "user": str, "db": str, "pgpass": str, "fence_file": str,
                         "ok_file": str, "fence_commands": list}


def check(cfg: Any) -> list[str]:
    """What is wrong with a config (empty when usable)."""
    if not isinstance(cfg, dict):
        return ["not a JSON object"]
    out = [f"{k}: missing or not a {t.__name__}" for k, t in KEYS.items() if not isinstance(cfg.get(k), t)]
    if cfg.get("ha_role") not in ("main", "backup"):
        out.append("ha_role: must be main or backup")
    for w in cfg.get("witnesses") or []:
        if not (isinstance(w, list) and len(w) == 2 and isinstance(w[0], str) and isinstance(w[1], int)):
            out.append(f"witnesses: {w!r} is not [address, port]")
    for c in cfg.get("fence_commands") or []:
        if not (isinstance(c, list) and c and all(isinstance(a, str) for a in c)):
            out.append(f"fence_commands: {c!r} is not an argv list")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("run", "gate", "once", "check"):
        print("usage: oml_pg_guard.py run|gate|once|check CONFIG", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    problems = check(cfg)
    if problems:
        print(f"{argv[1]}: " + "; ".join(problems), file=sys.stderr)
        return 2
    if argv[0] == "check":
        return 0
    if argv[0] == "gate":
        if not os.path.exists(cfg["fence_file"]):
            return 0
        try:
            with open(cfg["fence_file"], encoding="utf-8") as fh:
                reason = json.load(fh).get("reason", "?")
        except (OSError, ValueError):
            reason = "unreadable marker"
        print(f"FENCED: PostgreSQL on this node must not start: {reason}. Rejoin it as a standby "
              f"(recovery action), which removes {cfg['fence_file']}", file=sys.stderr)
        return 1
    guard = Guard(cfg)
    if argv[0] == "once":
        print(json.dumps(guard.round()))
        return 0
    log(f"guarding {cfg['node']} ({cfg['ha_role']}); peer {cfg['peer_name']} {cfg['peer']}")
    while True:
        t0 = time.monotonic()
        try:
            guard.round()
        except Exception as exc:  # the loop must survive anything one round meets; say what it was
            log(f"round failed: {type(exc).__name__}: {exc}")
        time.sleep(max(0.0, INTERVAL - (time.monotonic() - t0)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
