"""Redis + Sentinel failover on the HA install (fixtures in conftest.py, host map in common.py).

ROUNDS rounds (common.py), the master alternating (app_1 -> app_2 -> app_1 ...), each with the probe loop writing
to Redis through HAProxy on the web VIP (and HTTPS) every 100 ms:
  1. `systemctl stop redis` on the master: Sentinel promotes the replica, HAProxy follows; every write
     acknowledged so far is on the new master.
  2. `systemctl start redis` on the old master: it answers as a replica of the new master from its
     first reply (redis_role.py decided before the start), HAProxy never sees two masters, and every
     acknowledged write is on both nodes afterwards.
Recorded per round, printed with their median: time to recover (stop -> first acknowledged
write through the VIP), failed requests, longest outage, lost writes, two-master window (time HAProxy
had both Redis servers UP, from its own log, and time the old master answered `role:master`).
Then a re-run of install with the master on app_2 changes nothing, Sentinel's learned state
survives a restart of one and of all Sentinels, and the cluster is handed back as installed (master
on app_1, replica on app_2, every Sentinel) for the next modules.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from omldeploy.components.redis.redis_role import ask
from omldeploy.inventory import Tenant
from omldeploy.render import material
from omldeploy.sandbox import Sandbox
from omldeploy.state import ledger

from .common import ALL, ROLES, ROUNDS, cli, holders, start_unit, until, vips
from .probes import Probes

APPS = ("h5", "h6")
SENTINELS = ("h3", "h4", "h6", "h7")


@dataclass
class Round:
    old: str
    new: str
    recover: float  # stop -> first acknowledged write through the VIP after the outage
    failed: int
    outage: float
    acked: int
    lost: int
    haproxy_two_masters: float  # seconds HAProxy had both Redis servers UP
    old_as_master: float  # seconds the returning node answered role:master
    https_failed: int


RESULTS: list[Round] = []
#: the tenant's Redis/Sentinel password (components/redis_auth.py), read once from its generated secrets
PASSWORD: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _redis_password(ha: tuple[Tenant, float, str]) -> None:
    PASSWORD.setdefault("value", material.tenant_secrets(ha[0].folder)["redis_password"])


def redis(sb: Sandbox, host: str, *cmd: str, port: int = 6379, timeout: float = 2.0) -> object:
    return ask(sb.host(host).ip, port, timeout, cmd, password=PASSWORD["value"])[0]


def words(reply: object) -> list[str]:
    assert isinstance(reply, list), reply
    return [x.decode() if isinstance(x, bytes) else str(x) for x in reply]


def sentinel_master(sb: Sandbox, host: str) -> dict[str, str]:
    w = words(redis(sb, host, "SENTINEL", "MASTER", "master", port=26379))
    return dict(zip(w[::2], w[1::2], strict=True))


def master_named(sb: Sandbox, host: str) -> str:
    return words(redis(sb, host, "SENTINEL", "get-master-addr-by-name", "master", port=26379))[0]


def role(sb: Sandbox, host: str) -> list[str]:
    return words(redis(sb, host, "ROLE"))


def host_of(sb: Sandbox, ip: str) -> str:
    return next(h for h in APPS if sb.host(h).ip == ip)


def healthy(sb: Sandbox, master: str) -> bool:
    """`master` is master with the other app node streaming from it, and every Sentinel agrees with
    3 peers and 1 replica known."""
    replica = next(h for h in APPS if h != master)
    r = role(sb, replica)
    info = redis(sb, replica, "INFO", "replication")
    assert isinstance(info, bytes)
    if role(sb, master)[0] != "master" or r[:2] != ["slave", sb.host(master).ip] \
            or b"master_link_status:up" not in info:
        return False
    for s in SENTINELS:
        m = sentinel_master(sb, s)
        if (m["ip"], m["flags"], m["num-slaves"], m["num-other-sentinels"]) != (
                sb.host(master).ip, "master", "1", "3"):
            return False
    return True


def missing(sb: Sandbox, host: str, prefix: str, acked: list[int]) -> list[int]:
    """Acknowledged writes `host` does not hold (EXISTS in batches over one connection each)."""
    lost: list[int] = []
    for i in range(0, len(acked), 200):
        batch = acked[i:i + 200]
        replies = ask(sb.host(host).ip, 6379, 5.0, *(("EXISTS", f"{prefix}:{n}") for n in batch),
                      password=PASSWORD["value"])
        lost += [n for n, r in zip(batch, replies, strict=True) if r != 1]
    return lost


def journal_since(sb: Sandbox, host: str, unit: str, since: str) -> str:
    return sb.run(host, f"journalctl -u {unit} --no-pager -o short-iso-precise --since '{since}'").stdout


def two_up_seconds(log: str, new: str, until_ts: float) -> float:
    """Seconds during which HAProxy had both redis_master servers UP, from its state-change lines
    since the old master was started again (then only the new master was UP: it took the writes)."""
    up: set[str] = {new}  # HAProxy's name for the new master, UP before the log starts
    both_since: float | None = None
    total = 0.0
    for line in log.splitlines():
        m = re.match(r"(\S+) .*Server redis_master/(\S+) is (UP|DOWN)", line)
        if not m:
            continue
        ts = datetime.fromisoformat(m.group(1)).timestamp()
        before = len(up)
        if m.group(3) == "UP":
            up.add(m.group(2))
        else:
            up.discard(m.group(2))
        if before < 2 <= len(up):
            both_since = ts
        elif before >= 2 > len(up) and both_since is not None:
            total += ts - both_since
            both_since = None
    if both_since is not None:
        total += until_ts - both_since
    return total


class RoleWatch:
    """Asks a node for its role every 50 ms from before it starts: the first answer it gives, and how
    long it answered `master`."""

    def __init__(self, sb: Sandbox, host: str) -> None:
        self.sb, self.host = sb, host
        self.first: list[str] = []
        self.as_master = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                r = role(self.sb, self.host)
            except (OSError, ValueError, AssertionError):
                r = []
            if r and not self.first:
                self.first = r
            if r[:1] == ["master"]:
                self.as_master += 0.05
            self._stop.wait(max(0.0, 0.05 - (time.monotonic() - t)))

    def __enter__(self) -> RoleWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_acked(p: Probes, more_than: int, what: str, timeout: float = 30.0) -> float:
    """Monotonic time at which the probe loop had more than `more_than` acknowledged Redis writes."""
    until(what, lambda: len(p.redis.acked) > more_than, timeout, 0.05)
    return time.monotonic()


def one_round(tenant: Tenant, sb: Sandbox, n: int) -> Round:
    old = host_of(sb, master_named(sb, "h3"))
    new = next(h for h in APPS if h != old)
    until(f"round {n}: healthy before the stop", lambda: healthy(sb, old), 60, 1)
    web = holders(sb, vips(sb)["web"], ("h7", "h8"))
    assert len(web) == 1, web
    since = sb.run(web[0], "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    prefix = f"rd{n}-{time.time_ns()}"
    with Probes(tenant, sb, https=True, pg=False, redis=True, redis_key=prefix) as p:
        wait_acked(p, 20, "steady writes before the stop")
        failed0, t_stop = p.redis.failed, time.monotonic()
        sb.run(old, "systemctl stop redis")
        until("the outage to show in the probe loop", lambda: p.redis.failed > failed0, 30, 0.05)
        t_ok = wait_acked(p, len(p.redis.acked), "a write acknowledged through the VIP after the stop", 30)
        recover = t_ok - t_stop
        until("Sentinels name the new master",
              lambda: all(master_named(sb, s) == sb.host(new).ip for s in SENTINELS if s != old), 30, 0.2)
        assert role(sb, new)[0] == "master"
        # every write acknowledged until now is on the new master
        acked = list(p.redis.acked)
        assert missing(sb, new, prefix, acked) == [], "acknowledged writes lost in the failover"
        # the old master returns: a replica of the new one from its first answer
        started = sb.run(web[0], "date '+%Y-%m-%d %H:%M:%S.%N'").stdout.strip()[:26]
        with RoleWatch(sb, old) as watch:
            start_unit(sb, old, "redis")
            until("old master answers again", lambda: watch.first, 60, 0.1)
            until("old master streams from the new one", lambda: healthy(sb, new), 60, 0.5)
        wait_acked(p, len(p.redis.acked) + 20, "writes after the rejoin")
    acked = list(p.redis.acked)
    assert watch.first[:2] == ["slave", sb.host(new).ip], f"first answer of the returning node: {watch.first}"
    gate = journal_since(sb, old, "redis", since)
    assert f"starting as replica of {sb.host(new).ip}" in gate, gate[-2000:]
    lost = sorted(set(missing(sb, new, prefix, acked)) | set(missing(sb, old, prefix, acked)))
    two = two_up_seconds(journal_since(sb, web[0], "haproxy", started), ROLES[ALL.index(new)], time.time())
    r = Round(old, new, recover, p.redis.failed, p.redis.longest_outage, len(acked), len(lost), two,
              watch.as_master, p.https.failed)
    print(f"round {n} {old}->{new}: recovered in {recover:.1f} s; {p.summary()}; "
          f"{len(acked)} writes acknowledged, {len(lost)} lost; HAProxy two masters {two:.1f} s; "
          f"returning node as master {watch.as_master:.2f} s")
    assert not lost, f"acknowledged writes lost: {lost[:20]}"
    assert two == 0.0 and watch.as_master == 0.0
    return r


@pytest.mark.parametrize("n", range(1, ROUNDS + 1))
def test_redis_master_stopped_fails_over_without_losing_acknowledged_writes(
        ha: tuple[Tenant, float, str], ha_sandbox: Sandbox, n: int) -> None:
    RESULTS.append(one_round(ha[0], ha_sandbox, n))


def test_failover_figures_median_of_the_rounds(ha: tuple[Tenant, float, str]) -> None:
    if len(RESULTS) < ROUNDS:
        pytest.skip("a round failed: no median")

    def med(key: str) -> float:
        return statistics.median(float(getattr(r, key)) for r in RESULTS)

    print(f"Redis failover, median of {ROUNDS} round(s): recovery {med('recover'):.1f} s, failed {med('failed'):.0f}, "
          f"longest outage {med('outage'):.1f} s, lost {med('lost'):.0f}, HAProxy two-master window "
          f"{med('haproxy_two_masters'):.1f} s, HTTPS failed {med('https_failed'):.0f}")
    assert med("recover") <= 10.0


def test_a_reinstall_after_the_failovers_changes_nothing(ha: tuple[Tenant, float, str], instances: Path,
                                                        ha_sandbox: Sandbox) -> None:
    """The master is on app_2 now, the inventory still says app_1: nothing rendered holds the runtime
    role, so a re-run changes no file and restarts nothing (no failback, no role flip)."""
    sb = ha_sandbox
    master = master_named(sb, "h3")
    proc = cli(instances, "install", "--tenant", "ha")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rec = ledger.read(ha[0].folder)[-1]
    assert rec.outcome == "ok" and rec.changed == 0 and rec.restarted == [], rec
    assert master_named(sb, "h3") == master and healthy(sb, host_of(sb, master))


def test_sentinel_state_survives_a_restart(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox) -> None:
    """After the failovers the master is no longer the rendered one (odd rounds): a Sentinel restarted
    must know it, with its epoch, replica and peers, from its first answer (not after its peers'
    hellos correct it); and so must all of them restarted at once."""
    sb = ha_sandbox
    current = master_named(sb, "h3")
    until("healthy before the sentinel restarts", lambda: healthy(sb, host_of(sb, current)), 60, 1)
    before = {s: sentinel_master(sb, s) for s in SENTINELS}
    ids = {s: redis(sb, s, "SENTINEL", "MYID", port=26379) for s in SENTINELS}

    def first_answer(s: str) -> dict[str, str]:
        return until(f"sentinel on {s} answers", lambda: sentinel_master(sb, s), 60, 0.05)

    for group in (("h3",), SENTINELS):
        for s in group:
            sb.run(s, "systemctl stop sentinel")
        for s in group:
            start_unit(sb, s, "sentinel")
        for s in group:
            got = first_answer(s)
            assert (got["ip"], got["config-epoch"], got["num-slaves"]) == (
                current, before[s]["config-epoch"], "1"), (s, got)
            assert int(got["num-other-sentinels"]) == 3, (s, got)
            assert redis(sb, s, "SENTINEL", "MYID", port=26379) == ids[s]


def test_cluster_handed_back_as_installed(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox,
                                         instances: Path) -> None:
    """Master back on app_1 (the inventory's main) for the next modules, by the seed's action
    `redis_node_takeover_main` (checked preconditions, then Sentinel's own failover, then verified).
    Run again, it finds nothing to do."""
    sb = ha_sandbox
    if master_named(sb, "h3") != sb.host("h5").ip:
        until("healthy before the hand-back", lambda: healthy(sb, "h6"), 60, 1)
        t0 = time.monotonic()
        proc = cli(instances, "redis_node_takeover_main", "--tenant", "ha")
        print(f"redis_node_takeover_main: {time.monotonic() - t0:.1f} s")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        rec = ledger.read(ha[0].folder)[-1]
        assert rec.action == "redis_node_takeover_main" and rec.outcome == "ok", rec
    until("master on app_1, replica on app_2, every sentinel", lambda: healthy(sb, "h5"), 90, 1)
    again = cli(instances, "redis_node_takeover_main", "--tenant", "ha")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
