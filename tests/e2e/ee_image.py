"""A stand-in for the omldeploy execution environment (awx/execution-environment.yml), for a sandbox host.

The real image needs its base image from quay.io, which this machine cannot reach. The stand-in has what
the definition puts in it, from what is here: Python 3.11 (the test images' Debian 12 layer), the
omldeploy wheel installed as pip installs it (`--target`), and the distributions it requires, copied file
by file from this environment as their installed RECORD lists them; `omldeploy` on the PATH. Whether the
package and its CLI run in a container on a host, away from this checkout, is what it shows.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from omldeploy.sandbox.images.baselayer import Layer, ensure_base_layer, file_digest
from omldeploy.sandbox.images.oci import RegistryClient, image_config, manifest

ROOT = Path(__file__).resolve().parents[2]
SITE = "opt/omldeploy-ee/site"
REPO = "omldeploy/ee-standin"
LAUNCHER = f"#!/bin/sh\nPYTHONPATH=/{SITE} exec /usr/bin/python3 -m omldeploy \"$@\"\n"


def build_wheel(work: Path) -> Path:
    """The omldeploy wheel, built offline from a copy of this checkout (nothing is written into it): what
    `pip wheel .` makes for the execution environment."""
    src = work / "src-copy"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(work / "dist"), str(src)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [whl] = (work / "dist").glob("omldeploy-*.whl")
    return whl


def _requirements(name: str, seen: set[str]) -> None:
    """`name` and every distribution it requires (extras and markers for other platforms skipped)."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    seen.add(key)
    for req in metadata.requires(name) or []:
        spec, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        dep = re.split(r"[ <>=!~\[(]", spec.strip(), maxsplit=1)[0]
        try:
            metadata.distribution(dep)
        except metadata.PackageNotFoundError:
            continue
        _requirements(dep, seen)


def build_layer(wheel: Path, out: Path) -> Layer:
    """One layer: the wheel installed with pip under /opt/omldeploy-ee/site, its dependencies beside it,
    and /usr/local/bin/omldeploy."""
    seen: set[str] = set()
    _requirements("omldeploy", seen)
    seen.discard("omldeploy")
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(site), str(wheel)], check=True, capture_output=True, timeout=300)
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(site, arcname=SITE, filter=_clean)
            for name in sorted(seen):
                dist = metadata.distribution(name)
                for f in dist.files or []:
                    src = Path(str(dist.locate_file(f)))
                    if f.parts[0] == ".." or not src.is_file() or "__pycache__" in f.parts:
                        continue  # scripts installed outside site-packages, bytecode
                    tar.add(src, arcname=f"{SITE}/{f.as_posix()}", filter=_clean)
            info = tarfile.TarInfo("usr/local/bin/omldeploy")
            data = LAUNCHER.encode()
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    digest, size = file_digest(out)
    return Layer(out, digest, size)


def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def push(registry: str, wheel: Path, workdir: Path) -> str:
    """Build the stand-in and push it; returns its reference."""
    base = ensure_base_layer()
    top = build_layer(wheel, workdir / "ee-layer.tar")
    client = RegistryClient(registry)
    for layer in (base, top):
        client.push_blob(REPO, layer.digest, layer.size, layer=layer)
    cfg = image_config([base, top], entrypoint=[], cmd=["omldeploy", "--help"],
                       env=["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", f"PYTHONPATH=/{SITE}"],
                       workdir="/runner",
                       ports=(), volumes=(), labels={"org.omldeploy.sandbox": "ee-standin"})
    client.push_blob(REPO, cfg.digest, cfg.size, data=cfg.data)
    client.put_manifest(REPO, "1", manifest(cfg, [base, top]))
    return f"{registry}/{REPO}:1"
