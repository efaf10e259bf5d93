"""redis_role.py, the HA Redis start gate: which answer decides the role a node starts with.

The Sentinels and peers are small in-process RESP servers on 127.0.0.x, so the script's own protocol
code and timeouts are exercised, not a mock of them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omldeploy.components.redis import redis_role

ME, PEER = "10.0.0.5", "10.0.0.6"


def _bulk(x: str) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(x), x.encode())


def _array(items: list[str] | None) -> bytes:
    if items is None:
        return b"*-1\r\n"
    return b"*%d\r\n" % len(items) + b"".join(_bulk(i) for i in items)


class FakeServer:
    """Answers each RESP command (first word + second word) with a canned reply; `answer` may change."""

    def __init__(self, answer: Callable[[list[str]], bytes]) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                conn.settimeout(2)
                try:
                    while True:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        buf += chunk
                        while (cmd := _parse(buf)) is not None:
                            words, buf = cmd
                            conn.sendall(self.answer(words))
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def _parse(buf: bytes) -> tuple[list[str], bytes] | None:
    if b"\r\n" not in buf:
        return None
    head, rest = buf.split(b"\r\n", 1)
    words: list[str] = []
    for _ in range(int(head[1:])):
        if b"\r\n" not in rest:
            return None
        ln, rest = rest.split(b"\r\n", 1)
        n = int(ln[1:])
        if len(rest) < n + 2:
            return None
        words.append(rest[:n].decode())
        rest = rest[n + 2:]
    return words, rest


def sentinel(master: str | None, epoch: int = 1, flags: str = "master",
             replicas: int = 1) -> Callable[[list[str]], bytes]:
    def answer(words: list[str]) -> bytes:
        if words[1] == "get-master-addr-by-name":
            return _array(None if master is None else [master, "6379"])
        return _array(["name", "master", "ip", master or "", "flags", flags, "num-slaves", str(replicas),
                       "config-epoch", str(epoch)])
    return answer


def redis(role: str) -> Callable[[list[str]], bytes]:
    return lambda words: b"*3\r\n" + _bulk(role) + b":0\r\n*0\r\n"


@pytest.fixture()
def servers() -> Iterator[list[FakeServer]]:
    made: list[FakeServer] = []
    yield made
    for s in made:
        s.close()


def run(tmp_path: Path, sentinels: list[str], peers: tuple[str, ...] = (), default: str = ME,
        settle: float = 2.0) -> tuple[str, str]:
    """ROLE and MAIN the script writes."""
    out = tmp_path / "role.env"
    argv = ["--out", str(out), "--self", ME, "--default-main", default, "--timeout", "0.5",
            "--settle", str(settle)]
    for s in sentinels:
        argv += ["--sentinel", s]
    for p in peers:
        host, _, port = p.rpartition(":")
        argv += ["--peer", host, "--port", port]
    assert redis_role.main(argv) == 0
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    return env["ROLE"], env["MAIN"]


def dead_address() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    return addr


def test_a_node_the_sentinels_replaced_starts_as_replica_of_the_new_master(tmp_path: Path,
                                                                           servers: list[FakeServer]) -> None:
    servers += [FakeServer(sentinel(PEER, 2)), FakeServer(sentinel(PEER, 2))]
    assert run(tmp_path, [s.addr for s in servers] + [dead_address()]) == ("replica", PEER)


def test_the_newest_epoch_wins_over_the_most_votes(tmp_path: Path, servers: list[FakeServer]) -> None:
    servers += [FakeServer(sentinel(ME, 1)), FakeServer(sentinel(ME, 1)), FakeServer(sentinel(PEER, 2))]
    assert run(tmp_path, [s.addr for s in servers]) == ("replica", PEER)


def test_the_master_the_sentinels_see_up_starts_as_master(tmp_path: Path, servers: list[FakeServer]) -> None:
    servers += [FakeServer(sentinel(ME)), FakeServer(sentinel(ME))]
    assert run(tmp_path, [s.addr for s in servers]) == ("main", ME)


def test_a_master_seen_down_waits_for_the_failover_and_follows_it(tmp_path: Path,
                                                                  servers: list[FakeServer]) -> None:
    state = {"master": ME, "epoch": 1, "flags": "s_down,o_down,master"}

    def answer(words: list[str]) -> bytes:
        return sentinel(str(state["master"]), int(state["epoch"]), str(state["flags"]))(words)

    servers.append(FakeServer(answer))
    timer = threading.Timer(0.6, lambda: state.update(master=PEER, epoch=2, flags="master"))
    timer.start()
    t0 = time.monotonic()
    assert run(tmp_path, [servers[0].addr], settle=5) == ("replica", PEER)
    assert time.monotonic() - t0 < 3
    timer.cancel()


def test_a_failover_that_never_completes_is_waited_for_only_until_the_deadline(
        tmp_path: Path, servers: list[FakeServer]) -> None:
    servers.append(FakeServer(sentinel(ME, 1, "s_down,o_down,master")))
    t0 = time.monotonic()
    assert run(tmp_path, [servers[0].addr], settle=1) == ("main", ME)
    assert time.monotonic() - t0 < 3


def test_a_master_seen_down_without_a_known_replica_does_not_wait(tmp_path: Path,
                                                                  servers: list[FakeServer]) -> None:
    """First install: Sentinels on other hosts already watch the master that is not up yet."""
    servers.append(FakeServer(sentinel(ME, 0, "s_down,master", replicas=0)))
    t0 = time.monotonic()
    assert run(tmp_path, [servers[0].addr], settle=10) == ("main", ME)
    assert time.monotonic() - t0 < 2


def test_without_sentinels_a_peer_that_is_master_is_followed(tmp_path: Path, servers: list[FakeServer]) -> None:
    servers.append(FakeServer(redis("master")))
    assert run(tmp_path, [dead_address()], peers=(servers[0].addr,)) == ("replica", "127.0.0.1")


def test_without_any_answer_the_inventory_decides(tmp_path: Path, servers: list[FakeServer]) -> None:
    servers.append(FakeServer(redis("slave")))
    assert run(tmp_path, [dead_address()], peers=(servers[0].addr,)) == ("main", ME)
    assert run(tmp_path, [dead_address()], default=PEER) == ("replica", PEER)


def test_a_silent_sentinel_costs_one_timeout_not_one_per_sentinel(tmp_path: Path) -> None:
    """Sentinels that accept but never answer (a hung host): asked at once, each bounded."""
    silent = [socket.socket() for _ in range(4)]
    for s in silent:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
    t0 = time.monotonic()
    try:
        assert run(tmp_path, [f"127.0.0.1:{s.getsockname()[1]}" for s in silent]) == ("main", ME)
    finally:
        for s in silent:
            s.close()
    assert time.monotonic() - t0 < 2.5
