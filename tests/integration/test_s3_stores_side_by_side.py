"""Two sandbox S3 stores on one machine, as in CI (the session's sandbox and a module's own): each must
work as if it were alone.

`weed mini` reaches its own master, volume and filer over unix sockets with fixed names in /tmp, so two
stores with the same ports (each in its own network namespace, as sandboxes run them) used to reach each
other's components, and a put failed with InternalError ("dial tcp <the other store>: network is
unreachable"): the flaky `test_s3_store_accepts_generated_credentials_only`. Each store now runs with a
private /tmp (s3store.private_tmp). Root only (network and mount namespaces).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")

CHECK = """
import sys
import tempfile
from pathlib import Path
from omldeploy.sandbox.s3store import S3Info, wait_round_trip
ak, sk, log = sys.argv[1:4]
tries = wait_round_trip(S3Info("http://127.0.0.1:8333", ak, sk), lambda: True, Path(log), deadline=90)
print(tries)
"""


@pytest.fixture
def stores() -> Iterator[list[tuple[str, str, str, Path]]]:
    from omldeploy.sandbox.s3store import NO_TELEMETRY, identities_json, private_tmp, weed_binary

    weed = weed_binary()
    tag = secrets.token_hex(3)
    # not under /tmp: a store's own /tmp hides the machine's (the sandbox keeps its stores in /var/tmp)
    tmp_path = Path(tempfile.mkdtemp(prefix="omldeploy-it-s3pair-", dir="/var/tmp"))
    out: list[tuple[str, str, str, Path]] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(2):
            ns = f"osb-it-{tag}-{i}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            d = tmp_path / f"store{i}"
            (d / "data").mkdir(parents=True)
            (d / "tmp").mkdir()
            ak, sk = f"it{i}" + secrets.token_hex(4), secrets.token_urlsafe(20)
            (d / "s3.json").write_text(identities_json(ak, sk))
            log = open(d / "log", "wb")  # noqa: SIM115 (closed with the process)
            # the same (default) ports in both: only the namespaces keep them apart
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, *private_tmp(d / "tmp"), str(weed), "mini", f"-dir={d / 'data'}",
                 "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *NO_TELEMETRY, f"-s3.config={d / 's3.json'}",
                 "-admin.ui=false", "-webdav=false"], stdout=log, stderr=subprocess.STDOUT))
            out.append((ns, ak, sk, d))
        yield out
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns, *_ in out:
            subprocess.run(["ip", "netns", "delete", ns], check=False)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_two_stores_with_the_same_ports_do_not_reach_each_other(stores: list[tuple[str, str, str, Path]]) -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    t0 = time.monotonic()
    for ns, ak, sk, d in stores:
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CHECK, ak, sk, str(d / "log")],
                              capture_output=True, text=True, timeout=150, env={**os.environ, "PYTHONPATH": src})
        assert proc.returncode == 0, proc.stderr[-3000:] + (d / "log").read_text()[-3000:]
    for _ns, _ak, _sk, d in stores:
        assert "network is unreachable" not in (d / "log").read_text()
        assert list((d / "tmp").glob("seaweedfs-master-grpc-*.sock"))  # its sockets stayed in its own /tmp
    print(f"two stores side by side: both round trips ok in {time.monotonic() - t0:.1f} s")
