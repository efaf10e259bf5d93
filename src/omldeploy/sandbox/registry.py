"""The sandbox's local OCI registry: Debian's docker-registry (distribution v2) on the bridge address.

It listens only on the sandbox bridge (10.99.<k>.1:5000, plain HTTP), and only this sandbox's
hosts are told to trust it as an insecure registry. Storage is in the sandbox's state directory.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request

from .errors import SandboxError
from .procs import spawn_detached
from .progress import say
from .state import SandboxState


def registry_url(st: SandboxState) -> str:
    return f"http://{st.net.registry}"


def answering(st: SandboxState, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(registry_url(st) + "/v2/", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def start(st: SandboxState) -> None:
    """Start the registry if it is not running (idempotent)."""
    if st.registry is not None and st.registry.alive() and answering(st):
        return
    exe = shutil.which("docker-registry")
    if exe is None:
        raise SandboxError("docker-registry is not installed (apt-get install docker-registry, "
                           "or run .ci/e2e-setup.sh)")
    d = st.dir / "registry"
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage:\n  filesystem: {{rootdirectory: {d / 'data'}}}\n  delete: {{enabled: true}}\n"
        f"http:\n  addr: {st.net.registry}\n"
    )
    st.registry = spawn_detached([exe, "serve", str(d / "config.yml")], log=d / "log")
    st.save()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        if answering(st):
            say(f"registry up at {st.net.registry}")
            return
        if not st.registry.alive():
            break
        time.sleep(0.1)
    raise SandboxError(f"the registry did not start; see {d / 'log'}")
