"""Voice VIP, HAProxy VIP and cron leader failover on the installed HA cluster (conftest.py), proven
by killing things: a service's process on a host that stays up, a power cut of the active node, and
the cron node's keepalived or its whole host.

Design under test (components/keepalived): every VIP instance has a health check (`vrrp_script`,
weight 0: FAULT when it fails) and a holder bonus (+60 while the node is MASTER of that instance), so
the main node wins when nobody holds a role, and whoever holds a role keeps it when the other node
comes back. A role therefore moves once per failure; moving it back to the main is a planned act
(restart keepalived on the holder), measured here too.

Figures (time to recover, failed requests, longest outage) come from probe loops every 100 ms from
the controller, as a client on the LAN: an AMI connect that must see Asterisk's banner on the voice
VIP, and an HTTPS GET verified against the tenant CA on the web VIP. Power-offs are power cuts
(`hard=True`: every process of the host is killed at once, so keepalived sends no goodbye), the
worst case: the peer waits keepalived's master-down interval (3 adverts + skew, ~3.8 s).

The module leaves the cluster as the install made it (voice VIP on voice_1, web VIP on haproxy_1,
omlcron on app_1, every host up), for the modules after it.
"""

from __future__ import annotations

import json
import socket
import ssl
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import pytest

from omldeploy.inventory import Tenant
from omldeploy.sandbox import Sandbox
from omldeploy.sandbox.faults import power_off, power_on

from .common import ROUNDS, holders, until, vips

EVERY = 0.1
PAIRS = {"voice": ("h3", "h4"), "web": ("h7", "h8")}
INSTANCE = {"voice": "VOICE", "web": "HAPROXY"}
SERVICE = {"voice": "asterisk", "web": "haproxy"}
STATE_DIR = "/run/omnileads/keepalived"
RELOADS = ["module reload", "module reload res_odbc.so", "pjsip reload"]
GOAL = 5.0  # seconds: issue 9's goal for a VIP (stretch 2 s)


# --------------------------------------------------------------------------- probe loop


@dataclass
class Figures:
    recover: float  # seconds from the fault until the first success after the last failure
    failed: int
    outage: float  # longest run of failures, from the last success before it to the first after

    def line(self) -> str:
        return f"recover {self.recover:5.2f} s, failed {self.failed:3d}, longest outage {self.outage:5.2f} s"


@dataclass
class Loop:
    """One request every 100 ms in a thread; every attempt is kept as (monotonic time, ok, error)."""

    kind: str
    step: Callable[[], None]
    events: list[tuple[float, bool, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # every failure is data here
                self.events.append((time.monotonic(), False, type(exc).__name__))
            else:
                self.events.append((time.monotonic(), True, ""))
            nxt += EVERY
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def __enter__(self) -> Loop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        until(f"{self.kind} probe answers before the fault", lambda: self.ok_for(1.0), 30, 0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def ok_for(self, seconds: float) -> bool:
        """Every attempt of the last `seconds` succeeded (and there were some)."""
        now = time.monotonic()
        recent = [ok for t, ok, _ in list(self.events) if t >= now - seconds]
        return len(recent) >= seconds / EVERY / 2 and all(recent)

    def figures(self, t0: float, t1: float | None = None) -> Figures:
        events = [e for e in list(self.events) if t1 is None or e[0] <= t1]
        last_ok = max((t for t, ok, _ in events if ok and t < t0), default=t0)
        after = [e for e in events if e[0] >= t0]
        failed = sum(1 for _, ok, _ in after if not ok)
        outage, down_since, recover = 0.0, None, 0.0
        for t, ok, _ in after:
            if not ok and down_since is None:
                down_since = last_ok
            elif ok:
                if down_since is not None:
                    outage = max(outage, t - down_since)
                    recover = t - t0
                    down_since = None
                last_ok = t
        if down_since is not None:  # never came back within the window
            outage = recover = float("inf")
        return Figures(recover, failed, outage)

    def errors(self, t0: float) -> str:
        kinds: dict[str, int] = {}
        for t, ok, err in list(self.events):
            if t >= t0 and not ok:
                kinds[err] = kinds.get(err, 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))


def voice_step(sb: Sandbox) -> Callable[[], None]:
    vip = vips(sb)["voice"]

    def step() -> None:
        with socket.create_connection((vip, 5038), timeout=1.0) as conn:
            conn.settimeout(1.0)
            if b"Asterisk" not in conn.recv(64):
                raise ConnectionError("no AMI banner")
    return step


def web_step(sb: Sandbox, tenant: Tenant) -> Callable[[], None]:
    ctx = ssl.create_default_context(cafile=str(tenant.folder / ".omldeploy/pki/ca.pem"))
    url = f"https://{vips(sb)['web']}/health"

    def step() -> None:
        with urllib.request.urlopen(url, context=ctx, timeout=1.0) as resp:
            resp.read()
    return step


def probe(sb: Sandbox, tenant: Tenant, key: str) -> Loop:
    return Loop(key, voice_step(sb) if key == "voice" else web_step(sb, tenant))


# --------------------------------------------------------------------------- cluster facts


def holder(sb: Sandbox, key: str) -> str:
    """The one node of the pair that holds the VIP (waits, bounded, for exactly one)."""
    vip = vips(sb)[key]

    def one() -> str | None:
        h = holders(sb, vip, PAIRS[key])
        return h[0] if len(h) == 1 else None
    return until(f"exactly one holder of the {key} VIP", one, 30, 0.5)


def vip_on(sb: Sandbox, key: str, host: str) -> bool:
    return holders(sb, vips(sb)[key], (host,)) == [host]


def other(key: str, host: str) -> str:
    a, b = PAIRS[key]
    return b if host == a else a


def state(sb: Sandbox, host: str, instance: str) -> str:
    return sb.run(host, f"cat {STATE_DIR}/{instance}.state 2>/dev/null || echo NONE", timeout=10).stdout.strip()


def transition_journal(sb: Sandbox, host: str, since: float) -> str:
    """The transition's own lines (by tag: a short-lived `logger` is not always attributed to the unit)."""
    return sb.run(host, f"journalctl -q -o short-precise --since @{since:.0f} -t oml_ha_transition "
                        "--no-pager | tail -n 60", check=False, timeout=20).stdout


def asterisk_cli(sb: Sandbox, host: str) -> list[dict[str, object]]:
    """`asterisk -rx` commands the Asterisk stand-in on `host` received (its /health records them)."""
    with urllib.request.urlopen(f"http://{sb.host(host).ip}:7088/health", timeout=5) as resp:
        cli: list[dict[str, object]] = json.loads(resp.read()).get("cli_commands", [])
    return cli


def assert_voice_transition_ran(sb: Sandbox, host: str, since: float) -> None:
    """The seed's Asterisk transition ran on `host` after `since`: the three reloads reached its
    Asterisk, in order, and the transition logged its end. On failure, the journal lines say why."""
    def done() -> bool:
        cmds = [str(c["command"]) for c in asterisk_cli(sb, host) if float(str(c.get("time", 0))) >= since - 1]
        return cmds[-3:] == RELOADS and "Asterisk transition done" in transition_journal(sb, host, since)
    try:
        until(f"Asterisk transition on {host}", done, 30, 0.5)
    except pytest.fail.Exception as exc:
        raise AssertionError(f"{exc}\njournal of the transition on {host}:\n"
                             f"{transition_journal(sb, host, since)}") from None


def wait_rejoined(sb: Sandbox, host: str, instance: str) -> None:
    """A node back from a power cut runs keepalived again and is BACKUP for `instance`."""
    until(f"{host} keepalived active", lambda: sb.run(
        host, "systemctl is-active keepalived", check=False, timeout=10).stdout.strip() == "active", 180, 1)
    until(f"{host} {instance} BACKUP", lambda: state(sb, host, instance) == "BACKUP", 60, 0.5)


def report(title: str, rounds: list[tuple[str, Figures]], median: bool = True) -> str:
    lines = [f"{title}:"] + [f"  {label}: {f.line()}" for label, f in rounds]
    if median and len(rounds) > 1:
        med = Figures(statistics.median(f.recover for _, f in rounds),
                      int(statistics.median(f.failed for _, f in rounds)),
                      statistics.median(f.outage for _, f in rounds))
        lines.append(f"  median of {len(rounds)}: {med.line()}")
    return "\n".join(lines)


@pytest.fixture()
def say(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], None]]:
    """Benchmark lines printed even under -q (the issue wants them in the test output)."""
    def out(text: str) -> None:
        with capsys.disabled():
            print("\n" + text, flush=True)
    yield out


@pytest.fixture(scope="module", autouse=True)
def installed_layout(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox) -> Iterator[None]:
    """Start from the install's layout and hand it back the same way to the next module."""
    sb = ha_sandbox
    for key, (main, _backup) in PAIRS.items():
        assert holder(sb, key) == main
    yield
    for h in ("h3", "h4", "h5", "h6", "h7", "h8"):
        power_on(sb, h)  # no-op for a running host; a failed test may have left one off


# --------------------------------------------------------------------------- 1. a dead service process


def answers(conn: socket.socket, request: bytes) -> bool:
    """The connection still reaches the same server: it answers a request (a reset raises)."""
    conn.settimeout(5)
    conn.recv(256)  # the banner
    conn.sendall(request)
    return bool(conn.recv(256))


def pid_of(sb: Sandbox, host: str, container: str) -> int:
    return int(sb.run(host, f"podman inspect --format '{{{{.State.Pid}}}}' {container}", timeout=20).stdout)


def masters_since(sb: Sandbox, host: str, since: float) -> int:
    """How many times keepalived on `host` became MASTER since `since` (its own log lines)."""
    out = sb.run(host, f"journalctl -q -o cat --since @{since:.0f} -u keepalived.service --no-pager "
                       "| grep -c 'Entering MASTER STATE'", check=False, timeout=20).stdout.strip()
    return int(out or 0)


@pytest.mark.parametrize("key", ["web", "voice"])
def test_a_killed_service_process_moves_the_vip_by_its_health_check(key: str, ha: tuple[Tenant, float, str],
                                                                    ha_sandbox: Sandbox,
                                                                    say: Callable[[str], None]) -> None:
    """HAProxy on haproxy_1, Asterisk on voice_1, their hosts left running.

    a) SIGKILL of the service's main process: the unit restarts it (Restart=on-failure). Measured:
       the outage, and whether the VIP moved (it does when the restart takes longer than the check's
       2 failures at 1 s) and, if it did, that it stays on the peer once the main is healthy again.
    b) The process dies and stays dead (the unit stopped): the VIP follows the health check to the
       peer (and the peer's Asterisk transition runs); once the service is back on the main, the VIP
       stays on the peer: no second outage. Then the planned move back (restart keepalived on the
       peer) returns it to the main, and that blip is measured too.
    """
    sb, tenant = ha_sandbox, ha[0]
    main, peer = PAIRS[key]
    service, instance = SERVICE[key], INSTANCE[key]
    container = f"oml-{service}-server"
    lines: list[tuple[str, Figures]] = []
    with probe(sb, tenant, key) as loop:
        # a) killed, restarted by its unit
        wall, t0 = time.time(), time.monotonic()
        sb.run(main, f"kill -9 {pid_of(sb, main, container)}")
        until(f"{service} restarted on {main}", lambda: sb.run(
            main, f"systemctl is-active {service}", check=False).stdout.strip() == "active", 90, 0.5)
        until(f"{key} VIP answers steadily", lambda: loop.ok_for(3.0), 60, 0.5)
        restarted = loop.figures(t0)
        moved = masters_since(sb, peer, wall - 1)
        now_on = holder(sb, key)
        lines.append((f"kill -9, unit restarts it (VIP moved to the peer: {'yes' if moved else 'no'}, "
                      f"held by {now_on})", restarted))
        assert restarted.outage <= 30, loop.errors(t0)
        if now_on != main:  # the kill outlived the checks: hand the VIP back as an operator would
            back = time.monotonic()
            sb.run(now_on, "systemctl restart keepalived")
            until(f"{key} VIP back on {main}", lambda: holder(sb, key) == main, 30, 0.5)
            until(f"{key} VIP answers steadily", lambda: loop.ok_for(3.0), 60, 0.5)
            lines.append(("planned move back after a)", loop.figures(back)))

        # b) dead and not restarted: the health check moves the VIP
        wall, t0 = time.time(), time.monotonic()
        sb.run(main, f"systemctl stop {service}")
        until(f"{key} VIP on {peer}", lambda: holders(sb, vips(sb)[key], PAIRS[key]) == [peer], 30, 0.2)
        until(f"{key} VIP answers steadily", lambda: loop.ok_for(2.0), 30, 0.2)
        dead = loop.figures(t0)
        lines.append((f"{service} stopped on {main}: VIP to {peer}", dead))
        if key == "voice":
            assert_voice_transition_ran(sb, peer, wall)
        assert state(sb, main, instance) == "FAULT"
        # a session set up on the peer since the failover (a call's dialog, an AMI client) must live on
        session = socket.create_connection((vips(sb)[key], 5038), timeout=5) if key == "voice" else None
        # the service comes back on the main: the VIP stays where it is
        t1 = time.monotonic()
        sb.run(main, f"systemctl start {service}")
        until(f"{main} {instance} BACKUP again", lambda: state(sb, main, instance) == "BACKUP", 60, 0.5)
        until("3 s more of probes", lambda: time.monotonic() - t1 > 8 and loop.ok_for(3.0), 60, 0.5)
        returned = loop.figures(t1)
        lines.append((f"{service} back on {main}: VIP stays on {peer}", returned))
        assert holders(sb, vips(sb)[key], PAIRS[key]) == [peer]
        assert returned.failed == 0, loop.errors(t1)
        if session is not None:  # with preemption the main took the VIP back here and this got a reset
            with session:
                assert answers(session, b"Action: Ping\r\n\r\n")
        # planned move back: keepalived restarted on the holder
        wall, t2 = time.time(), time.monotonic()
        sb.run(peer, "systemctl restart keepalived")
        until(f"{key} VIP back on {main}", lambda: holders(sb, vips(sb)[key], PAIRS[key]) == [main], 30, 0.2)
        until(f"{key} VIP answers steadily", lambda: loop.ok_for(2.0), 30, 0.2)
        lines.append((f"planned move back (restart keepalived on {peer})", loop.figures(t2)))
        if key == "voice":
            assert_voice_transition_ran(sb, main, wall)
        wait_rejoined(sb, peer, instance)
    say(report(f"{key} VIP, service process killed on {main}", lines, median=False))
    assert dead.recover <= GOAL, (dead, loop.errors(t0))


# --------------------------------------------------------------------------- 2/3. power cuts, benchmark


@pytest.mark.parametrize("key", ["voice", "web"])
def test_power_cut_of_the_active_node_moves_the_vip(key: str, ha: tuple[Tenant, float, str], ha_sandbox: Sandbox,
                                                    say: Callable[[str], None]) -> None:
    """ROUNDS rounds (common.py): cut the power of whichever node holds the VIP, wait until the VIP answers from the
    peer, then power the node back on and check it rejoins as BACKUP without taking the VIP (and
    without a blip). Rounds alternate the active node, so on the voice pair the transition is proven
    on both nodes and again on a later move back. The last planned move returns the VIP to the main."""
    sb, tenant = ha_sandbox, ha[0]
    instance = INSTANCE[key]
    rounds: list[tuple[str, Figures]] = []
    rejoins: list[tuple[str, Figures]] = []
    for n in range(1, ROUNDS + 1):
        active = holder(sb, key)
        peer = other(key, active)
        with probe(sb, tenant, key) as loop:
            wall, t0 = time.time(), time.monotonic()
            power_off(sb, active, hard=True)
            until(f"{key} VIP on {peer}", partial(vip_on, sb, key, peer), 30, 0.2)  # the other node is off
            until(f"{key} VIP answers steadily", lambda: loop.ok_for(2.0), 30, 0.2)
            fig = loop.figures(t0)
            rounds.append((f"round {n}: power cut {active} -> {peer}", fig))
            assert fig.recover <= 2 * GOAL, loop.errors(t0)
            if key == "voice":
                assert_voice_transition_ran(sb, peer, wall)
            # the node comes back: BACKUP, no VIP, no blip
            t1 = time.monotonic()
            power_on(sb, active)
            wait_rejoined(sb, active, instance)
            until("probes steady after the rejoin", lambda: loop.ok_for(3.0), 60, 0.5)
            back = loop.figures(t1)
            rejoins.append((f"round {n}: {active} powered on, rejoins as BACKUP", back))
            assert holders(sb, vips(sb)[key], PAIRS[key]) == [peer]
            assert back.failed == 0, loop.errors(t1)
    say(report(f"{key} VIP, power cut of the active node", rounds) + "\n"
        + report(f"{key} VIP, the node powered back on", rejoins))
    assert statistics.median(f.recover for _, f in rounds) <= GOAL
    # hand the VIP back to the main (planned, measured)
    main = PAIRS[key][0]
    if holder(sb, key) != main:
        with probe(sb, tenant, key) as loop:
            wall, t0 = time.time(), time.monotonic()
            sb.run(other(key, main), "systemctl restart keepalived")
            until(f"{key} VIP back on {main}", lambda: holders(sb, vips(sb)[key], PAIRS[key]) == [main], 30, 0.2)
            until(f"{key} VIP answers steadily", lambda: loop.ok_for(2.0), 30, 0.2)
            say(report(f"{key} VIP, planned move back to {main}", [("restart keepalived on the holder",
                                                                      loop.figures(t0))]))
        if key == "voice":
            assert_voice_transition_ran(sb, main, wall)
        wait_rejoined(sb, other(key, main), instance)


# --------------------------------------------------------------------------- 4. cron leader


@dataclass
class CronWatch:
    """Samples `systemctl is-active omlcron` on both app nodes (a host that is off runs nothing)."""

    sb: Sandbox
    off: set[str] = field(default_factory=set)
    samples: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def running(self, host: str) -> bool:
        if host in self.off:
            return False
        try:
            return self.sb.run(host, "systemctl is-active omlcron", check=False, timeout=3).stdout.strip() == "active"
        except Exception:  # a host going down answers nothing: it runs nothing either
            return False

    def _run(self) -> None:
        with ThreadPoolExecutor(2) as pool:  # both nodes asked at once: one sample is one instant
            while not self._stop.is_set():
                t = time.monotonic()
                on = pool.map(self.running, ("h5", "h6"))
                self.samples.append((t, tuple(h for h, yes in zip(("h5", "h6"), on, strict=True) if yes)))
                self._stop.wait(0.1)

    def __enter__(self) -> CronWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def moved_to(self, host: str, since: float) -> float:
        """Seconds from `since` to the first sample with omlcron on `host` only."""
        def first() -> float | None:
            return next((t - since for t, on in list(self.samples) if t >= since and on == (host,)), None)
        return until(f"omlcron on {host} only", first, 60, 0.2)

    def doubles(self) -> list[float]:
        return [t for t, on in self.samples if len(on) > 1]


def test_cron_runs_on_exactly_one_app_node_and_moves_with_its_node(ha: tuple[Tenant, float, str],
                                                                    ha_sandbox: Sandbox,
                                                                    say: Callable[[str], None]) -> None:
    """keepalived stopped on app_1 (the leader): omlcron moves to app_2; keepalived back on app_1:
    omlcron stays on app_2 (sticky). Then a power cut of app_2 (the Redis replica, so Redis does not
    fail over): omlcron moves back to app_1; app_2 powered on does not start omlcron at boot. At every
    sample omlcron runs on at most one node."""
    sb = ha_sandbox
    probe_cron = CronWatch(sb)

    def on_app_1_only() -> bool:
        return probe_cron.running("h5") and not probe_cron.running("h6")
    until("omlcron on app_1 only", on_app_1_only, 60)
    lines: list[str] = []
    with CronWatch(sb) as watch:
        t0 = time.monotonic()
        sb.run("h5", "systemctl stop keepalived")
        took = watch.moved_to("h6", t0)
        lines.append(f"  keepalived stopped on app_1: omlcron on app_2 after {took:.1f} s")
        t1 = time.monotonic()
        sb.run("h5", "systemctl start keepalived")
        until("app_1 CRON BACKUP", lambda: state(sb, "h5", "CRON") == "BACKUP", 60, 0.5)
        until("5 s of samples", lambda: time.monotonic() - t1 > 5, 10, 0.5)
        assert all(on == ("h6",) for t, on in list(watch.samples) if t >= t1), "cron moved back on its own"
        lines.append("  keepalived back on app_1: omlcron stays on app_2")

        t2 = time.monotonic()
        watch.off.add("h6")
        power_off(sb, "h6", hard=True)
        took = watch.moved_to("h5", t2)
        lines.append(f"  power cut of app_2: omlcron on app_1 after {took:.1f} s")
        # issue 13: the tenant's metrics outlive the node: app_1's own Prometheus answers, sees app_2's
        # targets down and its own up, and still scrapes every other host
        seen = until("app_1's Prometheus sees app_2 down", lambda: app_1_sees_app_2_down(sb), 60, 1)
        lines.append(f"  app_1's Prometheus during the cut: {seen}")
        power_on(sb, "h6")
        watch.off.discard("h6")
        wait_rejoined(sb, "h6", "CRON")
        t3 = time.monotonic()
        until("5 s of samples", lambda: time.monotonic() - t3 > 5, 10, 0.5)
        assert all(on == ("h5",) for t, on in list(watch.samples) if t >= t3)
        lines.append("  app_2 powered on: rejoins as BACKUP, omlcron not started there")
    say("cron leader (keepalived CRON instance):\n" + "\n".join(lines)
        + f"\n  samples: {len(watch.samples)}, with omlcron on both nodes: {len(watch.doubles())}")
    assert not watch.doubles()


def app_1_sees_app_2_down(sb: Sandbox) -> str | None:
    """What app_1's Prometheus reports once app_2 (h6) is gone, or None while it does not yet say so."""
    try:
        with urllib.request.urlopen(f"http://{sb.host('h5').ip}:9090/api/v1/targets?state=active",
                                    timeout=5) as resp:
            active = json.load(resp)["data"]["activeTargets"]
    except OSError:
        return None
    gone = [t for t in active if t["labels"]["host"] == "app_2"]
    own = [t for t in active if t["labels"]["host"] == "app_1"]
    others_up = {t["labels"]["host"] for t in active if t["health"] == "up"} - {"app_1", "app_2"}
    if not gone or any(t["health"] != "down" for t in gone) or any(t["health"] != "up" for t in own):
        return None
    if len(others_up) < 6:  # the six other hosts each keep at least their node exporter up
        return None
    return f"{len(gone)} app_2 target(s) down, {len(own)} of its own up, {len(others_up)} other hosts up"


# --------------------------------------------------------------------------- 5. no start-limit loop


def test_transitions_never_reached_the_start_limit(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox) -> None:
    """After every move above: on each host the path unit still watches, its service never hit the
    start limit, and the watched folder holds only keepalived's state files."""
    sb = ha_sandbox
    bad: dict[str, str] = {}
    for h in ("h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"):
        path = sb.run(h, "systemctl is-active oml-ha-transition.path", check=False).stdout.strip()
        result = sb.run(h, "systemctl show -p Result --value oml-ha-transition.service", check=False).stdout.strip()
        limit = sb.run(h, "journalctl -q -b --no-pager -u oml-ha-transition.service -u oml-ha-transition.path "
                          "| grep -ci 'start-limit\\|too quickly'", check=False).stdout.strip()
        files = sb.run(h, f"ls -A {STATE_DIR}", check=False).stdout.split()
        if path != "active" or result != "success" or limit not in ("", "0") or \
                any(not f.endswith(".state") for f in files):
            bad[h] = f"path {path}, last result {result}, start-limit lines {limit}, folder {files}\n" + \
                sb.run(h, "journalctl -q -b --no-pager -n 20 -u oml-ha-transition.service", check=False).stdout
    assert not bad, bad
