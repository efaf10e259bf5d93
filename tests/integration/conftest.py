"""Integration tier: the backup host module against a real PostgreSQL 15 and a real S3 store, and
(test_rendered_configs.py) every rendered config checked by the program that reads it.

PostgreSQL comes from Debian's postgresql-15 binaries (initdb in a temp dir, loopback TCP on a free
port, trust auth for the test user only over the socket); the S3 store is SeaweedFS `weed mini` on
loopback (the binary cached by the sandbox, telemetry off). No sandbox hosts, no root needed for PG
(it runs as the `postgres` user when the tests run as root).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PGBIN = Path("/usr/lib/postgresql/15/bin")
LIBRARY = Path(__file__).resolve().parents[2] / "src/omldeploy/apply/ansible/library"
HERE = os.path.dirname(__file__)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_base(span: int = 4) -> int:
    """A base port with base..base+span-1 and their +10000 gRPC ports free (weed's convention)."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(20000)
        ports = [base + i for i in range(span)] + [base + 10000 + i for i in range(span)]
        ok = True
        for p in ports:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("omldeploy_backup", LIBRARY / "omldeploy_backup.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@dataclass
class PG:
    port: int
    sockdir: str
    user: str

    def env(self) -> dict[str, str]:
        return {"PGHOST": self.sockdir, "PGPORT": str(self.port), "PGUSER": self.user}

    def psql(self, sql: str, db: str = "postgres") -> str:
        proc = subprocess.run([str(PGBIN / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db,
                               "-c", sql], capture_output=True, text=True, env={**os.environ, **self.env()},
                              check=False)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
        return proc.stdout.strip()


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PG]:
    if not (PGBIN / "postgres").exists():
        pytest.skip("PostgreSQL 15 binaries missing (apt-get install postgresql-15; see .ci/e2e-setup.sh)")
    # not under pytest's tmp dir: that is 0700 root, and the server runs as `postgres` when we are root
    root = Path(tempfile.mkdtemp(prefix="omldeploy-it-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:  # initdb refuses root
        pw = pwd.getpwnam("postgres")
        for d in (root, sock):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        root.chmod(0o755)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid}
    user = "omltest"
    subprocess.run([str(PGBIN / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, **as_user)
    port = free_port()
    log = root / "log"
    with open(log, "wb") as logfh:
        proc = subprocess.Popen([str(PGBIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                 "-c", "full_page_writes=off"], stdout=logfh, stderr=subprocess.STDOUT, **as_user)
    try:
        for _ in range(100):
            if (sock / f".s.PGSQL.{port}").exists():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(log.read_text())
        time.sleep(0.3)
        yield PG(port, str(sock), user)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Store:
    endpoint: str
    access_key: str
    secret_key: str

    def cfg(self, bucket: str, **over: Any) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "region": "us-east-1", "bucket": bucket, "access_key": self.access_key,
                "secret_key": self.secret_key, "verify_tls": True, **over}


@pytest.fixture(scope="session")
def s3store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from omldeploy.sandbox.s3store import NO_TELEMETRY, S3Info, identities_json, wait_round_trip, weed_binary

    weed = weed_binary()
    root = tmp_path_factory.mktemp("s3")
    ak, sk = "it" + secrets.token_hex(6), secrets.token_urlsafe(24)
    conf = root / "s3.json"
    conf.write_text(identities_json(ak, sk))
    base = free_base()
    (root / "data").mkdir()
    log = root / "log"
    with open(log, "wb") as logfh:
            proc = subprocess.Popen([str(weed), "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                 f"-master.port={base}", f"-volume.port={base + 1}", f"-filer.port={base + 2}",
                                 f"-s3.port={base + 3}", f"-s3.config={conf}", "-admin.ui=false", "-webdav=false",
                                 *NO_TELEMETRY], stdout=logfh, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{base + 3}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(endpoint + "/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() - t0 > 60:
                    raise RuntimeError(f"weed did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        # answering is not ready: a first PUT can still meet a 500 while weed grows its volumes
        wait_round_trip(S3Info(endpoint, ak, sk), lambda: proc.poll() is None, log)
        yield Store(endpoint, ak, sk)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mod() -> ModuleType:
    return load_module()


@pytest.fixture(autouse=True)
def fast_backoff(mod: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries keep their count and order; only the waits between them shrink (tests stay fast)."""
    monkeypatch.setattr(mod.s3lib, "BACKOFF_BASE", 0.01)
    mod.NOTES.clear()


@pytest.fixture
def host_env(pg: PG, mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PG:
    """The module's view of a host: PG client tools on PATH, connection from PG* env, state dir in tmp."""
    for k, v in pg.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PATH", f"{PGBIN}:{os.environ['PATH']}")
    monkeypatch.setattr(mod, "STATE_ROOT", str(tmp_path / "state"))
    return pg
