#!/usr/bin/python3
"""Decide, before each start of an HA Redis node, whether it starts as master or as a replica.

Run on the host by systemd (`ExecStartPre` of redis.service) before the container starts; writes
ROLE/MAIN (the Redis image's contract) to an env file the unit passes to the container after the
rendered one. Python standard library only: it runs on any host that runs Ansible.

Why: a node restarted with the inventory's role comes back as a second master whenever Sentinel has
promoted the other node meanwhile. HAProxy's `role:master` check then routes writes to both until
Sentinel demotes the returning one, and every write it took is lost with its demotion. Asking the
Sentinels first makes the node start as a replica of the current master from its first moment.

Order of trust (first one that answers decides):
 1. Sentinels: the answer with the highest config epoch (Sentinel's own rule), most votes on a tie.
    If they name this node but see it down (s_down/o_down/failover) and know a replica of it, a
    failover may be under way: poll them until they name another node or `--settle` seconds pass
    (bounded; a failover whose replica is down too never completes, and then this node is rightly
    the master). Without a known replica (a first install) nothing can be promoted: no wait.
 2. No Sentinel answers (first install: Sentinel starts after Redis; or all of them down): the
    peers' own Redis. A peer that says `role:master` is followed, as starting a second master could
    lose writes while starting as a replica cannot.
 3. Nobody answers: the inventory's role (`--default-main`).
Every question has a timeout and the whole decision has a deadline; the script never fails the start
for lack of answers, only when it cannot write its file.

    redis_role.py --out FILE --self IP --default-main IP [--peer IP]... [--sentinel IP:PORT]...
                  [--name master] [--timeout 1] [--settle 12] [--auth-file FILE]

With `--auth-file` (the node's rendered auth.conf, 0600), every question to a Sentinel or a peer Redis
starts with AUTH and the `requirepass` read from that file: never a password on the command line.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass

DOWN_FLAGS = frozenset({"s_down", "o_down", "failover_in_progress"})


def _command(*parts: str) -> bytes:
    out = b"*%d\r\n" % len(parts)
    for p in parts:
        b = p.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


class _Reader:
    """Minimal RESP2 reader over a socket whose timeout bounds every receive."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RuntimeError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"unexpected reply {line[:40]!r}")


def read_password(path: str) -> str:
    """`requirepass` from a redis.conf-style file ('' when the file names none)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.strip().partition(" ")
            if key.lower() == "requirepass":
                return value.strip()
    return ""


def ask(host: str, port: int, timeout: float, *cmds: tuple[str, ...], password: str = "") -> list[object]:
    """Send commands on one connection and return their replies (errors as exception objects).
    With a password, AUTH goes first and its reply is not returned (a refused AUTH makes every
    following reply a NOAUTH error, which callers treat as no answer)."""
    sent = ((("AUTH", password),) if password else ()) + cmds
    with socket.create_connection((host, port), timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"".join(_command(*c) for c in sent))
        reader = _Reader(sock)
        replies = [reader.reply() for _ in sent]
        return replies[len(sent) - len(cmds):]


@dataclass(frozen=True)
class View:
    """One Sentinel's answer: the master it names, its config epoch, its flags for the master and how
    many replicas of it it knows (a failover needs one)."""

    sentinel: str
    master: str
    epoch: int
    flags: frozenset[str]
    replicas: int


def sentinel_view(addr: str, name: str, timeout: float, password: str = "") -> View | None:
    host, _, port = addr.rpartition(":")
    try:
        got, info = ask(host, int(port), timeout, ("SENTINEL", "get-master-addr-by-name", name),
                        ("SENTINEL", "master", name), password=password)
    except (OSError, ValueError):
        return None
    if not isinstance(got, list) or len(got) != 2 or not isinstance(got[0], bytes):
        return None
    fields: dict[str, str] = {}
    if isinstance(info, list):
        pairs = [x.decode() if isinstance(x, bytes) else "" for x in info]
        fields = dict(zip(pairs[::2], pairs[1::2], strict=False))
    def number(key: str) -> int:
        try:
            return int(fields.get(key, "0"))
        except ValueError:
            return 0

    return View(addr, got[0].decode(), number("config-epoch"),
                frozenset(fields.get("flags", "").split(",")) - {""}, number("num-slaves"))


def ask_sentinels(sentinels: list[str], name: str, timeout: float, password: str = "") -> list[View]:
    """Every Sentinel at once (a powered-off one costs one timeout, not one per Sentinel)."""
    views: list[View | None] = [None] * len(sentinels)

    def one(i: int, addr: str) -> None:
        views[i] = sentinel_view(addr, name, timeout, password)

    threads = [threading.Thread(target=one, args=(i, a), daemon=True) for i, a in enumerate(sentinels)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 2 + 1)
    return [v for v in views if v is not None]


def consensus(views: list[View]) -> tuple[str, list[View]] | None:
    """The master named with the highest config epoch; most votes on a tie; None without answers."""
    if not views:
        return None
    top = max(v.epoch for v in views)
    newest = [v for v in views if v.epoch == top]
    master, _ = Counter(v.master for v in newest).most_common(1)[0]
    return master, [v for v in newest if v.master == master]


def peer_master(peers: list[str], port: int, timeout: float, password: str = "") -> str | None:
    """A peer whose own Redis says it is a master, if any."""
    for peer in peers:
        try:
            (role,) = ask(peer, port, timeout, ("ROLE",), password=password)
        except (OSError, ValueError):
            continue
        if isinstance(role, list) and role and role[0] == b"master":
            return peer
    return None


def decide(args: argparse.Namespace, log: list[str]) -> str:
    """The address this node replicates from, or its own address to start as master."""
    me: str = args.self
    deadline = time.monotonic() + args.settle
    while True:
        views = ask_sentinels(args.sentinel, args.name, args.timeout, args.password)
        found = consensus(views)
        if found is None:
            break
        master, backing = found
        tally = f"{len(backing)} of {len(args.sentinel)} Sentinel(s), epoch {backing[0].epoch}"
        if master != me:
            log.append(f"Sentinels name {master} as master ({tally})")
            return master
        down = sorted({f for v in views for f in v.flags} & DOWN_FLAGS)
        if not down or not any(v.replicas for v in views):
            log.append(f"Sentinels name this node as master ({tally}"
                       + (f"; seen {'/'.join(down)} but no replica to fail over to)" if down else ")"))
            return me
        if time.monotonic() >= deadline:
            log.append(f"Sentinels still name this node as master, seen {'/'.join(down)}, and no failover "
                       f"completed within {args.settle:.0f} s ({tally})")
            return me
        # a failover of this node may be under way: ask again shortly (bounded by the deadline)
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    peer = peer_master(args.peer, args.port, args.timeout, args.password)
    if peer is not None:
        log.append(f"no Sentinel answered; peer {peer} says it is master")
        return peer
    default: str = args.default_main
    log.append(f"no Sentinel and no master peer answered; inventory role ({'master' if default == me else 'replica'})")
    return default


def write_env(path: str, role: str, main: str) -> None:
    """Atomic write: the container must never read a half-written file."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".redis-role.")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"ROLE={role}\nMAIN={main}\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--self", required=True)
    p.add_argument("--default-main", required=True)
    p.add_argument("--peer", action="append", default=[])
    p.add_argument("--sentinel", action="append", default=[])
    p.add_argument("--name", default="master")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--settle", type=float, default=12.0)
    p.add_argument("--auth-file", default="")
    args = p.parse_args(argv)
    args.password = read_password(args.auth_file) if args.auth_file else ""
    log: list[str] = []
    master = decide(args, log)
    role = "main" if master == args.self else "replica"
    write_env(args.out, role, master)
    print(f"redis-role: {log[-1]}: starting as {'master' if role == 'main' else 'replica of ' + master}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
