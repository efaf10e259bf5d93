"""The HA split-brain guard (components/repmgr/oml_pg_guard.py) and its wire client (oml_pgwire.py)
against real PostgreSQL 15 servers: a primary, a streaming standby cloned from it, and the same
standby promoted (timeline 2), which is exactly what repmgr leaves behind after a failover.

The guard is deployed as two files side by side; they are copied the same way here and run as the host
runs them (python3 <file> once|gate CONFIG). Fencing runs the rendered commands; here they record
themselves instead of stopping units on this machine.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import PGBIN, free_port

SRC = Path(__file__).resolve().parents[2] / "src/omldeploy/components"
PASSWORD = "guard-test-Pw-1"


@dataclass
class Server:
    port: int
    sock: str
    data: Path

    @property
    def socket_file(self) -> str:
        return f"{self.sock}/.s.PGSQL.{self.port}"


def _as_postgres() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid}


def _wait(what: str, ok: Any, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not true after {timeout:.0f} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Server, Server, ModuleType, Path]]:
    """(primary, standby, oml_pgwire module, folder with the deployed guard files)."""
    if not (PGBIN / "postgres").exists():
        pytest.skip("PostgreSQL 15 binaries missing (apt-get install postgresql-15; see .ci/e2e-setup.sh)")
    root = Path(tempfile.mkdtemp(prefix="omldeploy-it-guard-"))
    root.chmod(0o755)
    user = _as_postgres()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        servers = []
        for name in ("a", "b"):
            (root / f"sock-{name}").mkdir()
            if user:
                os.chown(root / f"sock-{name}", user["user"], user["group"])
            servers.append(Server(free_port(), str(root / f"sock-{name}"), root / f"data-{name}"))
        a, b = servers
        if user:
            os.chown(root, user["user"], user["group"])
        subprocess.run([str(PGBIN / "initdb"), "-D", str(a.data), "-U", "omltest", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "--no-sync"], check=True, capture_output=True, **user)
        with open(a.data / "pg_hba.conf", "a") as fh:
            fh.write("host replication all 127.0.0.1/32 scram-sha-256\n")

        def start(s: Server) -> None:
            log = open(root / f"log-{s.port}", "wb")  # noqa: SIM115 (closed with the process)
            procs.append(subprocess.Popen(
                [str(PGBIN / "postgres"), "-D", str(s.data), "-p", str(s.port), "-k", s.sock,
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], stdout=log, stderr=subprocess.STDOUT,
                **user))
            _wait("server up", lambda: os.path.exists(s.socket_file))

        start(a)
        psql = [str(PGBIN / "psql"), "-X", "-q", "-h", a.sock, "-p", str(a.port), "-U", "omltest", "-d", "postgres"]
        _wait("primary accepts", lambda: subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode == 0)
        subprocess.run([*psql, "-c", f"CREATE ROLE repmgr SUPERUSER LOGIN REPLICATION PASSWORD '{PASSWORD}'",
                        "-c", "CREATE DATABASE repmgr OWNER repmgr"], check=True, capture_output=True)
        subprocess.run([str(PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(a.port), "-U", "repmgr",
                        "-D", str(b.data), "-R", "-X", "stream", "--no-sync", "-c", "fast"], check=True,
                       capture_output=True, env={**os.environ, "PGPASSWORD": PASSWORD}, **user)
        start(b)
        deployed = root / "lib"
        deployed.mkdir()
        shutil.copy(SRC / "repmgr/oml_pg_guard.py", deployed)
        shutil.copy(SRC / "postgresql/oml_pgwire.py", deployed)
        sys.path.insert(0, str(deployed))
        import oml_pgwire  # type: ignore[import-not-found]

        yield a, b, oml_pgwire, deployed
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        if str(root / "lib") in sys.path:
            sys.path.remove(str(root / "lib"))
        shutil.rmtree(root, ignore_errors=True)


def test_the_wire_client_speaks_trust_and_scram(cluster: tuple[Server, Server, ModuleType, Path]) -> None:
    a, _b, wire, _ = cluster
    assert wire.query("SELECT pg_is_in_recovery(), 1 + 1, NULL", unix=a.socket_file, user="omltest",
                      db="postgres") == [("f", "2", None)]
    assert wire.query("SELECT current_user", host="127.0.0.1", port=a.port, user="repmgr", db="repmgr",
                      password=PASSWORD) == [("repmgr",)]
    with pytest.raises(wire.PgError, match="password authentication failed"):
        wire.query("SELECT 1", host="127.0.0.1", port=a.port, user="repmgr", db="repmgr", password="wrong")
    with pytest.raises(wire.PgError, match="asks for a password"):
        wire.query("SELECT 1", host="127.0.0.1", port=a.port, user="repmgr", db="repmgr")
    with pytest.raises(wire.PgError, match="division by zero"):
        wire.query("SELECT 1/0", unix=a.socket_file, user="omltest", db="postgres")
    with pytest.raises(OSError):
        wire.query("SELECT 1", host="127.0.0.1", port=free_port(), user="repmgr", db="repmgr", timeout=1)


def test_pgpass_lookup_handles_escapes(tmp_path: Path, cluster: tuple[Server, Server, ModuleType, Path]) -> None:
    wire = cluster[2]
    f = tmp_path / "pgpass"
    f.write_text("# comment\n*:5432:*:other:nope\n*:5432:*:repmgr:a\\:b\\\\c:d\n")
    assert wire.pgpass_password(str(f), "repmgr") == "a:b\\c:d"
    assert wire.pgpass_password(str(tmp_path / "missing"), "repmgr") is None


@pytest.fixture
def node(tmp_path: Path, cluster: tuple[Server, Server, ModuleType, Path]) -> Any:
    """Write a guard config for a node whose local server is `local` and whose peer is `peer`."""
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:repmgr:{PASSWORD}\n")
    pgpass.chmod(0o600)
    witness = socket.socket()
    witness.bind(("127.0.0.1", 0))
    witness.listen(8)
    # a host that does not answer at all (packets dropped, as behind a cut link): a listener whose
    # accept queue is full lets further connects time out. Outside addresses cannot stand in for it:
    # a transparent proxy may accept anything.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    held = socket.create_connection(silent.getsockname(), 2)
    fenced_log = tmp_path / "fence-steps"

    def make(local: Server, peer_port: int, *, ha_role: str = "main", witnesses: bool | None = True) -> Path:
        """witnesses: True one that answers, False one that is silent, None none configured (two nodes)."""
        cfg = {
            "node": "sql_x", "ha_role": ha_role, "peer": "127.0.0.1", "peer_port": peer_port, "peer_name": "sql_y",
            "witnesses": [] if witnesses is None else [["127.0.0.1", witness.getsockname()[1]]] if witnesses else
                         [["127.0.0.1", silent.getsockname()[1]]],
            "socket": local.socket_file, "user": "omltest", "db": "postgres", "pgpass": str(pgpass),
            "fence_file": str(tmp_path / "state/fenced"), "ok_file": str(tmp_path / "run/ok"),
            "fence_commands": [["sh", "-c", f"echo stopped >> {fenced_log}"]],
        }
        path = tmp_path / "guard.json"
        path.write_text(json.dumps(cfg))
        return path

    make.tmp = tmp_path  # type: ignore[attr-defined]
    yield make
    for sock in (witness, held, silent):
        sock.close()


def guard(deployed: Path, verb: str, cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(deployed / "oml_pg_guard.py"), verb, str(cfg)],
                          capture_output=True, text=True, timeout=60)


def test_a_primary_with_a_standby_peer_may_serve(cluster: tuple[Server, Server, ModuleType, Path], node: Any) -> None:
    a, b, _wire, deployed = cluster
    cfg = node(a, b.port)
    out = json.loads(guard(deployed, "once", cfg).stdout)
    assert out["local"] == ["primary", 1] and out["peer"] == ["standby", 0] and not out["fenced"]
    assert (node.tmp / "run/ok").exists()
    assert guard(deployed, "gate", cfg).returncode == 0
    # the standby itself: nothing to guard, no right to the RW VIP
    out = json.loads(guard(deployed, "once", node(b, a.port)).stdout)
    assert out["local"] == ["standby", 0] and not (node.tmp / "run/ok").exists()


def test_a_primary_whose_peer_is_gone_serves_alone_unless_it_is_the_isolated_one(
        cluster: tuple[Server, Server, ModuleType, Path], node: Any) -> None:
    a, _b, _wire, deployed = cluster
    nobody = free_port()
    out = json.loads(guard(deployed, "once", node(a, nobody)).stdout)
    assert out["peer"] is None and not out["fenced"] and (node.tmp / "run/ok").exists()
    # isolated: peer and witnesses silent; one round only starts the clock (no fence on one blip)
    cfg = node(a, nobody, witnesses=False)
    out = json.loads(guard(deployed, "once", cfg).stdout)
    assert not out["fenced"] and out["isolated_for"] == 0


def test_the_guard_loop_fences_an_isolated_primary_within_seconds(
        cluster: tuple[Server, Server, ModuleType, Path], node: Any) -> None:
    a, _b, _wire, deployed = cluster
    cfg = node(a, free_port(), witnesses=False)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(deployed / "oml_pg_guard.py"), "run", str(cfg)],
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait("fenced", lambda: (node.tmp / "state/fenced").exists(), 15)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    took = time.monotonic() - t0
    assert 2.0 <= took < 8.0, took  # not on one silent round, and well before repmgr's ~6-10 s promotion
    assert "FENCED: isolated" in err
    assert (node.tmp / "fence-steps").read_text() == "stopped\n"
    assert not (node.tmp / "run/ok").exists()
    gate = guard(deployed, "gate", cfg)
    assert gate.returncode == 1 and "isolated" in gate.stderr and "Rejoin it as a standby" in gate.stderr


def test_without_witnesses_a_primary_whose_peer_is_gone_keeps_serving(
        cluster: tuple[Server, Server, ModuleType, Path], node: Any) -> None:
    """Two-node HA with no `ha_witness`: isolation cannot be told from a dead peer, and a primary that
    fenced itself whenever its only peer died would turn every backup-node failure into an outage."""
    a, _b, _wire, deployed = cluster
    cfg = node(a, free_port(), witnesses=None)
    proc = subprocess.Popen([sys.executable, str(deployed / "oml_pg_guard.py"), "run", str(cfg)],
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait("confirmed", lambda: (node.tmp / "run/ok").exists(), 15)
        end = time.monotonic() + 5.0  # over twice the isolation limit: a fence would have happened by now
        while time.monotonic() < end:
            assert (node.tmp / "run/ok").exists() and not (node.tmp / "state/fenced").exists()
            time.sleep(0.2)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert "no witness is configured: serving alone" in err
    assert guard(deployed, "gate", cfg).returncode == 0


def test_after_a_promotion_the_old_primary_fences_itself_and_the_new_one_serves(
        cluster: tuple[Server, Server, ModuleType, Path], node: Any) -> None:
    """Last in this module: it promotes the standby (timeline 2), as repmgrd does in a failover."""
    a, b, wire, deployed = cluster
    wire.query("SELECT pg_promote(true, 30)", unix=b.socket_file, user="omltest", db="postgres", timeout=40)
    _wait("promoted", lambda: wire.query("SELECT pg_is_in_recovery()", unix=b.socket_file, user="omltest",
                                         db="postgres") == [("f",)])
    old = json.loads(guard(deployed, "once", node(a, b.port)).stdout)
    assert old["local"] == ["primary", 1] and old["peer"] == ["primary", 2] and old["fenced"]
    reason = json.loads((node.tmp / "state/fenced").read_text())["reason"]
    assert reason.startswith("sql_y (127.0.0.1) is primary on timeline 2")
    assert not (node.tmp / "run/ok").exists()
    (node.tmp / "state/fenced").unlink()
    new = json.loads(guard(deployed, "once", node(b, a.port)).stdout)
    assert new["local"] == ["primary", 2] and not new["fenced"] and (node.tmp / "run/ok").exists()
