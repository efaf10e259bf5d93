"""The one big layer every test image shares: Debian bookworm with all service packages.

Built once (debootstrap + apt in the tree) and cached as an uncompressed layer tar keyed by a hash
of this recipe. Every image in the sandbox registry references this same blob, so the registry
stores it once and each host pulls it once, whatever images it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..debian import apt_install, debootstrap, in_tree, trim
from ..procs import run
from ..progress import say, step

LAYER_RECIPE_VERSION = 4
SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = ("python3", "ca-certificates", "openssl", "procps", "iproute2", "curl",
                       "netcat-openbsd", "tzdata")
#: Real services of the test images, all from Debian (Loki and Promtail are not in Debian: stand-ins).
#: postgresql-15-repmgr: upstream's HA PostgreSQL image carries repmgr and repmgrd
#: (`shared_preload_libraries = 'repmgr'`), so the postgres test image does too.
SERVICE_PACKAGES = (
    "postgresql-15", "postgresql-15-repmgr", "redis-server", "redis-sentinel", "nginx-light", "haproxy", "keepalived",
    "prometheus", "prometheus-node-exporter", "prometheus-postgres-exporter", "prometheus-redis-exporter",
)
#: Directories the images declare or write to, with the owner the real images use.
POST_INSTALL = (
    "install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data && "
    "install -d -o redis -g redis /data && "
    "install -d /etc/omnileads/certs /usr/local/etc/haproxy /etc/keepalived /etc/prometheus /prometheus "
    "/etc/asterisk/custom /var/log/asterisk /opt/omnileads/static /opt/omnileads/log "
    "/opt/omnileads/ominicontacto /opt/omnileads/bin /etc/loki /etc/promtail && "
    "rm -rf /var/lib/postgresql/15/main /etc/postgresql/15/main && "
    # size: ~500 MB of moment-timezone history data (classic Prometheus UI), promtool, LLVM for
    # PostgreSQL's optional JIT (PostgreSQL runs without it), perl headers, locale sources
    "rm -rf /usr/share/javascript/moment-timezone/data /usr/bin/promtool /usr/share/i18n "
    "/usr/lib/x86_64-linux-gnu/perl/5.36.0/CORE /usr/include "
    "/usr/lib/postgresql/15/lib/llvmjit* /usr/lib/postgresql/15/lib/bitcode "
    "/usr/lib/x86_64-linux-gnu/libLLVM-14.so* /usr/lib/x86_64-linux-gnu/libz3.so*"
)


@dataclass(frozen=True)
class Layer:
    """A finished, cached layer: uncompressed tar, its sha256 digest and size."""

    path: Path
    digest: str
    size: int


def recipe_hash() -> str:
    blob = json.dumps({"v": LAYER_RECIPE_VERSION, "suite": SUITE, "include": DEBOOTSTRAP_INCLUDE,
                       "packages": SERVICE_PACKAGES, "post": POST_INSTALL}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def cached_layer(tar: Path) -> Layer | None:
    meta = tar.with_suffix(".json")
    if tar.exists() and meta.exists():
        d = json.loads(meta.read_text())
        return Layer(tar, str(d["digest"]), int(d["size"]))
    return None


def finish_layer(tmp_tar: Path, tar: Path) -> Layer:
    """Hash a freshly written tar, record the digest beside it and move it into place."""
    digest, size = file_digest(tmp_tar)
    tmp_tar.replace(tar)
    # the record appears whole or not at all: a concurrent process may be reading it (cached_layer)
    meta = tar.with_suffix(".json")
    tmp_meta = meta.with_suffix(f".json.tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps({"digest": digest, "size": size}) + "\n")
    tmp_meta.replace(meta)
    return Layer(tar, digest, size)


def ensure_base_layer() -> Layer:
    """The cached Debian layer, building it on first use."""
    out_dir = paths.CACHE / "images"
    out_dir.mkdir(parents=True, exist_ok=True)
    tar = out_dir / f"debian-{recipe_hash()}.tar"
    with paths.file_lock("image-base"):
        found = cached_layer(tar)
        if found is not None:
            return found
        say("building the shared Debian layer of the test images (once per recipe)")
        tree = out_dir / f"debian-{recipe_hash()}.d"
        log = out_dir / f"debian-{recipe_hash()}.log"
        log.write_text("")
        if tree.exists():
            shutil.rmtree(tree)
        tree.mkdir()
        try:
            debootstrap(SUITE, tree, DEBOOTSTRAP_INCLUDE, log)
            apt_install(tree, SERVICE_PACKAGES, log)
            in_tree(tree, POST_INSTALL, log)
            trim(tree, docs=True)
            tmp = tar.with_suffix(".tar.tmp")
            with step(f"tar of the image tree ({tree.name})"):
                run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=security.capability",
                     "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./run/*",
                     "-C", str(tree), "-cf", str(tmp), "."], log=log)
            layer = finish_layer(tmp, tar)
        finally:
            if tree.exists():
                shutil.rmtree(tree)
        say(f"image base layer: {layer.size / 1e6:.0f} MB, {layer.digest[:19]}")
        return layer
