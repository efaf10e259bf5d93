"""Write a bundle to a folder: one tree per host mirroring the target paths, plus a manifest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omldeploy.render.bundle import Bundle

MANIFEST = "omldeploy-manifest.json"
FIREWALL = "omldeploy-firewall.nft"  # the host's nftables script (firewall: nftables), beside the manifest


def write_bundle(bundle: Bundle, out: Path) -> list[Path]:
    """Replace `out` with the rendered trees; returns the host folders written."""
    if out.exists():
        marker = out / ".omldeploy-render"
        if not marker.exists() and any(out.iterdir()):
            raise FileExistsError(f"{out} exists and was not written by `omldeploy render`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".omldeploy-render").write_text(f"{bundle.tenant} {bundle.layout}\n")
    written = []
    for hb in bundle.hosts:
        root = out / hb.host
        root.mkdir()
        for f in hb.files:
            dest = root / f.path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(f.content)
            os.chmod(dest, f.mode)
        (root / MANIFEST).write_text(hb.manifest_json())
        if hb.firewall is not None:
            (root / FIREWALL).write_text(hb.firewall)
        written.append(root)
    return written
