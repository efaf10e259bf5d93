"""`omldeploy ha drill`: fail the active side of one HA pair on a running tenant, measure, put it back.

A drill answers the operator's question "would it fail over today?" with figures instead of hope:
  1. read the cluster; refuse unless the pair is healthy and in the inventory's layout (a drill on a
     degraded pair is an outage, not a drill);
  2. start probe loops from this machine through the VIPs, every 100 ms (the clients' path): committed
     PostgreSQL inserts, acknowledged Redis writes through HAProxy, Asterisk's AMI banner, HTTPS;
  3. fail the active side: stop its unit (default), or power its host off with the operator's command;
  4. measure the time until the probes succeed again, and check that the pair moved, that every write
     acknowledged before the failure is still there, and that the old side holds nothing (fenced);
  5. put the cluster back with the same actions an operator would run (recovery, then takeover), and
     verify the initial layout;
  6. print the report and append it to the ledger. Without `--yes` only the plan is printed.
The probe rows live in a table (PostgreSQL) and a list (Redis) named after the drill, removed at the end.
"""

from __future__ import annotations

import secrets
import shlex
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from omldeploy.components import redis_auth
from omldeploy.components.postgresql import oml_pgwire
from omldeploy.inventory.model import Host, Tenant
from omldeploy.ops import ha
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.ops.ha_facts import Pair, ha_hosts
from omldeploy.placement import place
from omldeploy.render import material
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from omldeploy.state.runlog import RunLog

COMPONENTS = ("postgres", "redis", "voice", "haproxy", "cron")
EVERY = 0.1
RECOVERY_TIMEOUT = 120.0


class Probe:
    """One probe loop in its own thread: attempts, failures, the longest outage, acknowledged ids."""

    def __init__(self, kind: str, attempt: Callable[[int], bool]) -> None:
        self.kind = kind
        self.attempt = attempt
        self.attempts = self.failed = 0
        self.acked: list[int] = []
        self.longest = 0.0
        self.first_failure: float | None = None
        self.back_at: float | None = None
        self._down: float | None = None
        self._last_ok: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            t = time.monotonic()
            try:
                ok = self.attempt(n)
            except Exception:  # any error is a failed attempt: a probe that died would
                ok = False  # read as an outage that never ends, and the drill would wait it out
            now = time.monotonic()
            self.attempts += 1
            if ok:
                self.acked.append(n)
                if self._down is not None:
                    self.longest = max(self.longest, now - self._down)
                    self._down = None
                    self.back_at = now
                self._last_ok = now
            else:
                self.failed += 1
                if self.first_failure is None:
                    self.first_failure = now
                if self._down is None:
                    self._down = self._last_ok if self._last_ok is not None else now
            self._stop.wait(max(0.0, EVERY - (time.monotonic() - t)))

    @property
    def down(self) -> bool:
        return self._down is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._down is not None:
            self.longest = max(self.longest, time.monotonic() - self._down)

    def summary(self) -> str:
        return f"{self.kind}: {self.failed}/{self.attempts} failed, longest outage {self.longest:.1f} s"


def _resp(*parts: str) -> bytes:
    out = f"*{len(parts)}\r\n".encode()
    for p in parts:
        b = p.encode()
        out += f"${len(b)}\r\n".encode() + b + b"\r\n"
    return out


def _auth(password: str) -> tuple[tuple[str, ...], ...]:
    """The AUTH command to send first when Redis requires a password (components/redis_auth.py)."""
    return (("AUTH", password),) if password else ()


def redis_call(address: str, *commands: tuple[str, ...], timeout: float = 1.0, password: str = "",
               port: int = 6379) -> list[bytes]:
    """Pipelined commands with one-line replies (integers, status): the replies' first lines (after
    AUTH's, which is not returned: a refused AUTH shows in the next reply as NOAUTH). A connection closed
    before every reply came (HAProxy with no Redis server behind it) is an OSError, as a refused one is."""
    sent = (*_auth(password), *commands)
    with socket.create_connection((address, port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(b"".join(_resp(*c) for c in sent))
        data = b""
        while data.count(b"\r\n") < len(sent):
            chunk = s.recv(65536)
            if not chunk:
                got = data.count(b"\r\n")
                raise OSError(f"connection closed after {got} of {len(sent)} replies")
            data += chunk
        return data.split(b"\r\n")[len(sent) - len(commands):len(sent)]


def redis_list(address: str, key: str, timeout: float = 5.0, port: int = 6379, password: str = "") -> list[bytes]:
    """LRANGE key 0 -1: the whole array reply, read up to the length its header announces."""
    with socket.create_connection((address, port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(b"".join(_resp(*c) for c in _auth(password)) + _resp("LRANGE", key, "0", "-1"))
        data = b""
        if password:  # AUTH's one-line reply comes first
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("AUTH: connection closed")
                data += chunk
            line, data = data.split(b"\r\n", 1)
            if not line.startswith(b"+OK"):
                raise OSError(f"AUTH refused: {line[:60].decode(errors='replace')}")
        while True:
            lines = data.split(b"\r\n")
            if len(lines) > 1 and lines[0].startswith(b"*"):
                n = max(int(lines[0][1:]), 0)
                if len(lines) > 2 * n + 1:  # header, then "$len" and the value per element
                    return lines[2:2 * n + 1:2]
            elif len(lines) > 1:
                raise OSError(f"LRANGE {key}: {lines[0].decode(errors='replace')}")
            chunk = s.recv(1 << 20)
            if not chunk:
                raise OSError(f"LRANGE {key}: connection closed before the whole reply")
            data += chunk


@dataclass
class Target:
    """What the drill fails and how it measures: the pair, the unit that fails it, the probe."""

    component: str
    pair: str
    unit: str
    probe: str  # pg, redis, ami, https, cron


TARGETS = {
    "postgres": Target("postgres", "postgresql", "postgresql", "pg"),
    "redis": Target("redis", "redis", "redis", "redis"),
    "voice": Target("voice", "voice", "asterisk", "ami"),
    "haproxy": Target("haproxy", "haproxy", "haproxy", "https"),
    "cron": Target("cron", "cron", "keepalived", "cron"),  # CRON follows the node's keepalived
}


@dataclass
class Drill:
    tenant: Tenant
    target: Target
    reporter: Reporter
    power_off: str | None = None
    power_on: str | None = None
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    report: dict[str, Any] = field(default_factory=dict)

    # ---- probes
    def _pg_query(self, sql: str, timeout: float = 5.0) -> list[tuple[str | None, ...]]:
        """One statement through the RW VIP as the app's user (the clients' path)."""
        s = self.tenant.settings
        return oml_pgwire.query(sql, user=s.text("postgres_user"), db=s.text("postgres_database"),
                                host=s.text("postgres_host"), password=s.text("postgres_password"), timeout=timeout)

    def _pg(self) -> Callable[[int], bool]:
        table = f"omldeploy_drill_{self.tag}"
        self._pg_query(f"CREATE TABLE IF NOT EXISTS {table} (n bigint PRIMARY KEY)")

        def attempt(n: int) -> bool:
            self._pg_query(f"INSERT INTO {table} VALUES ({int(n)})", timeout=1.0)
            return True

        return attempt

    def _pg_kept(self, acked: list[int]) -> int:
        have = {int(r[0] or 0) for r in self._pg_query(f"SELECT n FROM omldeploy_drill_{self.tag}")}
        return len(set(acked) - have)

    def _redis_password(self) -> str:
        """The tenant's Redis password where Redis requires one (the seed's HA; the drill has no Redis
        pair elsewhere), from its generated secrets on this controller."""
        return material.tenant_secrets(self.tenant.folder).get(redis_auth.SECRET_KEY, "")

    def _redis(self) -> Callable[[int], bool]:
        address = self.tenant.settings.text("application_host")
        password = self._redis_password()

        def attempt(n: int) -> bool:
            # acknowledged = the master's reply. Not WAIT for a replica: after the failover the new master
            # has none until the old one returns, and clients do not wait either. A stopped Redis hands
            # its replica everything before it exits; a power cut may lose the last writes, and the
            # report then says how many
            return redis_call(address, ("RPUSH", f"omldeploy:drill:{self.tag}", str(n)),
                              password=password)[0].startswith(b":")

        return attempt

    def _redis_kept(self, acked: list[int]) -> int:
        have = {int(x) for x in redis_list(self.tenant.settings.text("application_host"),
                                           f"omldeploy:drill:{self.tag}", password=self._redis_password())
                if x.isdigit()}
        return len(set(acked) - have)

    def _ami(self) -> Callable[[int], bool]:
        address = self.tenant.settings.text("voice_host")

        def attempt(n: int) -> bool:
            with socket.create_connection((address, 5038), 1.0) as s:
                s.settimeout(1.0)
                return s.recv(64).startswith(b"Asterisk Call Manager")

        return attempt

    def _https(self) -> Callable[[int], bool]:
        ca = self.tenant.folder / ".omldeploy" / "pki" / "ca.pem"
        ctx = ssl.create_default_context(cafile=str(ca)) if ca.exists() else ssl.create_default_context()
        if not ca.exists():
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # availability, not trust, is measured
        url = f"https://{self.tenant.settings.text('application_host')}/"

        def attempt(n: int) -> bool:
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=1.0) as resp:
                    return bool(resp.status < 500)
            except urllib.error.HTTPError as exc:
                return exc.code < 500

        return attempt

    def probe(self) -> Probe | None:
        make = {"pg": self._pg, "redis": self._redis, "ami": self._ami, "https": self._https}.get(self.target.probe)
        return Probe(self.target.probe, make()) if make else None

    def cleanup(self) -> None:
        s = self.tenant.settings
        try:
            if self.target.probe == "pg":
                self._pg_query(f"DROP TABLE IF EXISTS omldeploy_drill_{self.tag}")
            elif self.target.probe == "redis":
                redis_call(s.text("application_host"), ("DEL", f"omldeploy:drill:{self.tag}"),
                           password=self._redis_password())
        except (OSError, oml_pgwire.PgError) as exc:
            self.reporter.warn(f"the drill's probe data was not removed: {exc}")

    # ---- failing and restoring a node
    def fail(self, run: ha.Run, node: Host) -> str:
        if self.power_off:
            cmd = _command(self.power_off, node)
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise ha.Failed(f"power-off command failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
            return f"powered off {node.name} ({cmd})"
        run.call(node, "fail", "units", stop=[self.target.unit])
        return f"stopped {self.target.unit} on {node.name}"

    def unfail(self, run: ha.Run, node: Host) -> None:
        if self.power_off and self.power_on:
            cmd = _command(self.power_on, node)
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise ha.Failed(f"power-on command failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
            _wait(f"{node.name} answers again", lambda: "error" not in run.read()[0][node.name], 600)
        if self.target.pair != "postgresql":  # PostgreSQL comes back through a recovery action, never by a start
            run.call(node, "start", "units", start=[self.target.unit], timeout=180.0)


def _command(template: str, node: Host) -> str:
    """The operator's power command for `node`: inventory values land in a shell line, quoted."""
    return template.replace("{host}", shlex.quote(node.name)).replace("{ip}", shlex.quote(node.address))


def _wait(what: str, cond: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise ha.Failed(f"not true after {timeout:.0f} s: {what}")
        time.sleep(0.5)
    return time.monotonic() - t0


def _pair(pairs: list[Pair], name: str) -> Pair:
    found = next((p for p in pairs if p.name in (name, "web+voice" if name == "voice" else name)), None)
    if found is None:
        raise ha.Refused(f"this tenant has no {name} pair")
    return found


def plan(tenant: Tenant, component: str, pairs: list[Pair], power_off: str | None) -> list[str]:
    target = TARGETS[component]
    if tenant.layout.two_node and component in ("redis", "haproxy", "cron"):
        raise ha.Refused(f"two-node HA has no {component} pair (Redis is per node, there is no HAProxy, cron "
                         "follows the web+voice VIP: drill `voice`)")
    pair = _pair(pairs, target.pair)
    if not pair.ok:
        raise ha.Refused(f"the {pair.name} pair is degraded ({'; '.join(pair.problems)}): repair it first "
                         f"({pair.repair or 'see omldeploy ha status'}); a drill on it would be an outage")
    if pair.swapped and pair.repair:  # PostgreSQL, Redis: the return ends with the takeover to main
        raise ha.Refused(f"the {pair.name} pair runs on its backup node; run {pair.repair} first so that the "
                         "drill starts from (and returns to) the inventory's layout")
    active = pair.active[0]
    how = f"power off {active} ({power_off})" if power_off else f"stop {target.unit} on {active}"
    probe = {"pg": f"a committed INSERT through the RW VIP {tenant.settings.text('postgres_host')} "
                   "(table omldeploy_drill_<id>, dropped at the end)",
             "redis": f"an acknowledged RPUSH through HAProxy {tenant.settings.text('application_host')}:6379 "
                      "(key omldeploy:drill:<id>, deleted at the end)",
             "ami": f"Asterisk's AMI banner on the voice VIP {tenant.settings.text('voice_host')}:5038",
             "https": f"HTTPS on the web VIP {tenant.settings.text('application_host')}",
             "cron": "omlcron's unit on each app node"}[target.probe]
    back = {"postgresql": f"recovery of {active} (fresh standby of the new primary), then "
                          "pgsql_node_takeover_main",
            "redis": f"start redis on {active} (it returns as a replica), then redis_node_takeover_main"}.get(
        pair.name, f"start {target.unit} on {active}, then move the role back to it (its unit stopped "
                   "briefly on the other node)")
    return [f"pair {pair.name}: active {active}, members {', '.join(pair.members)}",
            f"probe every {EVERY * 1000:.0f} ms: {probe}",
            f"fail: {how}",
            f"measure: time until the probe succeeds again (bounded {RECOVERY_TIMEOUT:.0f} s), the new active "
            "node, writes acknowledged before the failure still there, the old side holding nothing",
            f"return: {back}; verify the initial layout"]


def drill(tenant: Tenant, component: str, reporter: Reporter, *, yes: bool, power_off: str | None = None,
          power_on: str | None = None) -> int:
    """0 passed (or plan shown), 1 refused or failed, 2 not an HA tenant."""
    try:
        ha_hosts(tenant)
    except ValueError as exc:
        reporter.warn(f"{exc}; nothing was done")
        return 2
    if bool(power_off) != bool(power_on):
        reporter.warn("--power-off and --power-on go together (the drill powers the host on again to return to "
                      "the initial layout); nothing was done")
        return 2
    reporter.redact = redactor(tenant)
    run = ha.Run(tenant, reporter, place(tenant))
    started = ledger.now()
    d = Drill(tenant, TARGETS[component], reporter, power_off, power_on)
    with tenant_lock(tenant.folder, tenant.name, f"ha-drill-{component}"):
        try:
            _facts, pairs = run.read()
            steps = plan(tenant, component, pairs, power_off)
        except ha.Refused as exc:
            reporter.warn(f"drill REFUSED: {exc}")
            return 1
        reporter.line(f"ha drill {component} on tenant {tenant.name}" + ("" if yes else " (plan only: add --yes)"))
        for i, s in enumerate(steps, 1):
            reporter.line(f"  {i}. {s}")
        if not yes:
            return 0
        reporter.log = RunLog(tenant.folder, f"ha-drill-{component}", reporter.redact)
        outcome, code = "ok", 0
        try:
            _execute(d, run, pairs)
        except (ha.Failed, ha.Refused, OSError, oml_pgwire.PgError) as exc:
            outcome, code = "failed", 1
            d.report["error"] = str(exc)
            reporter.warn(reporter.redact(f"drill FAILED: {exc}; `omldeploy ha status` shows where the cluster stands"))
        finally:
            d.cleanup()
            ledger.append(tenant.folder, ledger.Record(
                action=f"ha-drill-{component}", outcome=outcome, started=started,
                duration=round(time.monotonic() - run.t0, 1), versions=dict(tenant.versions),
                hosts=sorted({s["host"] for s in run.steps if "host" in s}),
                detail=d.report.get("summary", d.report.get("error", "")),
                extra={"report": d.report, "steps": run.steps}), redact=reporter.redact)
            if reporter.log:
                reporter.line(f"log: {reporter.log.path}")
                reporter.log.close()
            reporter.log = None
        return code


def _execute(d: Drill, run: ha.Run, pairs: list[Pair]) -> None:
    t = d.target
    pair = _pair(pairs, t.pair)
    old = run.tenant.host(pair.active[0])
    probe = d.probe()
    report = d.report
    report.update(component=t.component, failed_node=old.name)
    with _Probing(probe):
        if probe is not None:
            _wait("acknowledged probes before the failure", lambda: len(probe.acked) >= 5, 30)
        t0 = time.monotonic()
        report["how"] = d.fail(run, old)
        run.say(report["how"])
        if probe is not None:
            _wait("the probe fails or the pair moves", lambda: probe.first_failure is not None
                  or _moved(run, t.pair, old.name), RECOVERY_TIMEOUT)
            _wait(f"{probe.kind} through the VIP again", lambda: not probe.down, RECOVERY_TIMEOUT)
            report["recovered_s"] = round((probe.back_at or time.monotonic()) - t0, 1) if probe.failed else 0.0
        _wait("the role on the other node", lambda: _moved(run, t.pair, old.name), RECOVERY_TIMEOUT)
        report["moved_s"] = round(time.monotonic() - t0, 1)  # as read by `ha status` (a read takes ~2 s)
        report.setdefault("recovered_s", report["moved_s"])
        if probe is not None:  # a few answers after the recovery, so the figures cover its end
            seen = probe.attempts
            _wait("probes after the recovery", lambda: probe.attempts >= seen + 5, 30)
    if probe is not None:
        report.update(failed_requests=probe.failed, attempts=probe.attempts, longest_outage_s=round(probe.longest, 1))
        if t.probe in ("pg", "redis"):
            lost = d._pg_kept(probe.acked) if t.probe == "pg" else d._redis_kept(probe.acked)
            report.update(acked=len(probe.acked), lost=lost)
            if lost:
                raise ha.Failed(f"{lost} of {len(probe.acked)} acknowledged writes are missing after the failover")
    _facts, pairs = run.read()
    now = _pair(pairs, t.pair)
    report["new_active"] = now.active
    if old.name in now.vip_holders or old.name in now.active:
        raise ha.Failed(f"the old active node {old.name} still holds the role or its VIP")
    run.say(f"failed over to {', '.join(now.active)} in {report['recovered_s']} s; "
            + (probe.summary() if probe else "") + (f"; lost {report.get('lost', 0)} acknowledged writes"
                                                     if "lost" in report else ""))
    t1 = time.monotonic()
    _return(d, run, old)
    report["return_s"] = round(time.monotonic() - t1, 1)
    report["summary"] = (f"{t.component}: {report['how']}; recovered {report['recovered_s']} s"
                         + (f", {probe.summary()}" if probe else "")
                         + (f", lost {report['lost']} of {report['acked']} acknowledged writes"
                            if "lost" in report else "")
                         + f"; back to the initial layout in {report['return_s']} s")
    run.say(report["summary"])


def _moved(run: ha.Run, pair_name: str, old: str) -> bool:
    _, pairs = run.read()
    p = _pair(pairs, pair_name)
    return bool(p.active) and old not in p.active


def _return(d: Drill, run: ha.Run, old: Host) -> None:
    t = d.target
    if t.pair == "postgresql":
        d.unfail(run, old)
        which = "main" if old.ha_role == "main" else "backup"
        ha.pgsql_recovery(run, which)
        if which == "main":
            ha.pgsql_takeover(run)
        return
    d.unfail(run, old)
    if t.pair == "redis":
        _wait("the old master back as an in-sync replica", lambda: _pair(run.read()[1], "redis").ok, 120)
        if old.ha_role == "main":
            ha.redis_takeover(run)
        return
    # voice, haproxy, cron: the role is sticky on the node that took it; move it back by failing that node
    # briefly, now that the old one is healthy again
    _wait(f"{old.name} healthy again", lambda: _pair(run.read()[1], t.pair).ok, 120)
    holder = run.tenant.host(next(iter(_pair(run.read()[1], t.pair).active)))
    if holder.name == old.name:
        return
    run.call(holder, "handback", "units", stop=[t.unit])
    _wait(f"the role back on {old.name}", lambda: _pair(run.read()[1], t.pair).active == [old.name], 120)
    run.call(holder, "restart", "units", start=[t.unit], timeout=180.0)
    _wait("the pair healthy in the initial layout", lambda: (lambda p: p.ok and p.active == [old.name])(
        _pair(run.read()[1], t.pair)), 120)


class _Probing:
    def __init__(self, probe: Probe | None) -> None:
        self.probe = probe

    def __enter__(self) -> None:
        if self.probe:
            self.probe.start()

    def __exit__(self, a: type[BaseException] | None, b: BaseException | None, c: TracebackType | None) -> None:
        if self.probe:
            self.probe.stop()
