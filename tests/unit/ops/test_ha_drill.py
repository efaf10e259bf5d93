"""`ha drill` without hosts: the plan it prints, when it refuses, and how a probe loop counts."""

from __future__ import annotations

import time

import pytest

from omldeploy.inventory import Tenant
from omldeploy.ops import ha, ha_drill
from omldeploy.ops.converge import Reporter
from omldeploy.ops.ha_facts import summarize
from omldeploy.placement import Placement, place
from tests.unit.conftest import MakeTenant
from tests.unit.ops.test_ha_logic import data_nodes, healthy, promote_backup


@pytest.fixture
def ha8(make_tenant: MakeTenant) -> tuple[Tenant, Placement]:
    t = make_tenant("ha")
    return t, place(t)


def test_the_plan_names_the_active_node_the_failure_the_probe_and_the_way_back(
        ha8: tuple[Tenant, Placement]) -> None:
    t, placement = ha8
    main, _ = data_nodes(t)
    pairs = summarize(t, healthy(t, placement), placement)
    steps = ha_drill.plan(t, "postgres", pairs, None)
    assert f"active {main}" in steps[0] and f"stop postgresql on {main}" in steps[2]
    assert t.settings.text("postgres_host") in steps[1] and "pgsql_node_takeover_main" in steps[4]
    steps = ha_drill.plan(t, "haproxy", pairs, "virsh destroy {host}")
    assert "power off" in steps[2] and "virsh destroy" in steps[2]
    assert "HTTPS" in steps[1]


def test_a_degraded_or_swapped_pair_is_not_drilled(ha8: tuple[Tenant, Placement], make_tenant: MakeTenant) -> None:
    t, placement = ha8
    facts = healthy(t, placement)
    promote_backup(t, facts)
    with pytest.raises(ha.Refused, match=r"degraded.*pgsql_node_recovery_main"):
        ha_drill.plan(t, "postgres", summarize(t, facts, placement), None)
    swapped = summarize(t, healthy(t, placement, redis_master="backup"), placement)
    with pytest.raises(ha.Refused, match="redis_node_takeover_main first"):
        ha_drill.plan(t, "redis", swapped, None)
    two = make_tenant("ha_aio", name="two")
    tp = place(two)
    for component in ("redis", "haproxy", "cron"):
        with pytest.raises(ha.Refused, match="two-node HA has no"):
            ha_drill.plan(two, component, summarize(two, healthy(two, tp), tp), None)
    assert "web+voice" in ha_drill.plan(two, "voice", summarize(two, healthy(two, tp), tp), None)[0]


def test_power_off_needs_power_on(ha8: tuple[Tenant, Placement]) -> None:
    t, _ = ha8
    said: list[str] = []
    r = Reporter(say=said.append, warn=said.append)
    assert ha_drill.drill(t, "voice", r, yes=True, power_off="virsh destroy {host}") == 2
    assert "go together" in said[-1]


def test_a_probe_counts_failures_and_the_longest_outage() -> None:
    results = iter([True, True, False, False, False, True] + [True] * 1000)
    probe = ha_drill.Probe("x", lambda n: next(results))
    probe.start()
    deadline = time.monotonic() + 5
    while probe.attempts < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    probe.stop()
    assert probe.failed == 3 and probe.acked[:3] == [1, 2, 6]
    assert 0.25 < probe.longest < 1.0 and not probe.down and probe.back_at is not None


def test_a_probe_error_is_a_failure_not_a_crash() -> None:
    def attempt(n: int) -> bool:
        raise ConnectionRefusedError("refused")

    probe = ha_drill.Probe("x", attempt)
    probe.start()
    time.sleep(0.35)
    probe.stop()
    assert probe.failed == probe.attempts >= 2 and probe.down


@pytest.mark.parametrize("password", ["", "0123abcd"])
def test_a_redis_list_reply_is_read_to_its_announced_length_even_in_pieces(password: str) -> None:
    """...also after AUTH's reply when Redis requires a password (issue 12 M8: the HA Redis does)."""
    import socket
    import threading

    reply = b"*3\r\n$1\r\n1\r\n$2\r\n22\r\n$3\r\n333\r\n"
    if password:
        reply = b"+OK\r\n" + reply
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            got.append(conn.recv(1024))
            for i in range(0, len(reply), 5):  # a reply split across reads must not end the read early
                conn.sendall(reply[i:i + 5])
                time.sleep(0.01)
            conn.recv(1)  # keep the connection open: the reader must stop by the header, not by EOF

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert ha_drill.redis_list("127.0.0.1", "k", timeout=5, port=port, password=password) == [b"1", b"22", b"333"]
        assert got[0].startswith(b"*2\r\n$4\r\nAUTH\r\n$8\r\n0123abcd\r\n" if password else b"*4\r\n$6\r\nLRANGE")
    finally:
        srv.close()


@pytest.mark.parametrize("password", ["", "0123abcd"])
def test_a_redis_connection_closed_before_the_reply_is_a_failed_attempt(password: str) -> None:
    """HAProxy with no Redis server behind it (mid-failover) accepts, then closes: with AUTH in front
    that used to end the probe thread with an IndexError, and the drill waited 120 s for a recovery
    it could no longer see."""
    import socket
    import threading

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    replies = [b"", b"+OK\r\n" if password else b"", b"+OK\r\n:7\r\n" if password else b":7\r\n"]

    def serve() -> None:
        for reply in replies:
            conn, _ = srv.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        for _ in range(2):
            with pytest.raises(OSError, match="connection closed"):
                ha_drill.redis_call("127.0.0.1", ("RPUSH", "k", "1"), password=password, port=port)
        assert ha_drill.redis_call("127.0.0.1", ("RPUSH", "k", "1"), password=password, port=port) == [b":7"]
    finally:
        srv.close()

    results = iter([True, IndexError("a bug in an attempt")] + [True] * 1000)

    def attempt(n: int) -> bool:
        r = next(results)
        if isinstance(r, Exception):
            raise r
        return r

    probe = ha_drill.Probe("x", attempt)
    probe.start()
    deadline = time.monotonic() + 5
    while probe.attempts < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    probe.stop()
    assert probe.attempts >= 4 and probe.failed == 1 and not probe.down


def test_inventory_values_are_quoted_in_the_operators_power_command(ha8: tuple[Tenant, Placement]) -> None:
    import dataclasses
    import shlex

    t, _ = ha8
    node = dataclasses.replace(t.hosts[0], name="voice_1; touch /tmp/x", address="10.0.0.5 && reboot")
    cmd = ha_drill._command("virsh destroy {host} --ip {ip}", node)
    assert shlex.split(cmd) == ["virsh", "destroy", "voice_1; touch /tmp/x", "--ip", "10.0.0.5 && reboot"]
