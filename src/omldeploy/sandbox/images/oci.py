"""Minimal OCI image assembly and a Docker Registry HTTP API v2 client (push only).

Images are built directly as OCI manifests over cached layer tars (uncompressed layers: the
registry is on a local bridge, so compressing would only cost CPU). Blobs already in the registry
are skipped, and blobs present under another repository are cross-mounted instead of re-sent.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ..errors import SandboxError
from .baselayer import Layer

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CREATED = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    data: bytes


def json_blob(obj: Any) -> Blob:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return Blob("sha256:" + hashlib.sha256(raw).hexdigest(), len(raw), raw)


def image_config(layers: list[Layer], *, entrypoint: list[str], cmd: list[str], env: list[str],
                 workdir: str, ports: tuple[str, ...], volumes: tuple[str, ...],
                 labels: dict[str, str], user: str = "", stop_signal: str = "SIGTERM") -> Blob:
    cfg: dict[str, Any] = {"Env": env, "Entrypoint": entrypoint, "Cmd": cmd or None,
                           "WorkingDir": workdir, "Labels": labels, "StopSignal": stop_signal}
    if user:
        cfg["User"] = user
    if ports:
        cfg["ExposedPorts"] = {p: {} for p in ports}
    if volumes:
        cfg["Volumes"] = {v: {} for v in volumes}
    return json_blob({
        "created": CREATED, "architecture": "amd64", "os": "linux", "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "history": [{"created": CREATED, "created_by": f"omldeploy sandbox layer {layer.path.name}"}
                    for layer in layers],
    })


def manifest(config: Blob, layers: list[Layer]) -> Blob:
    return json_blob({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer.digest, "size": layer.size} for layer in layers],
    })


class RegistryClient:
    """Push-only client for a plain-HTTP registry (host:port)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.known: dict[str, str] = {}  # blob digest -> a repository that has it

    def _conn(self) -> http.client.HTTPConnection:
        host, _, port = self.address.partition(":")
        return http.client.HTTPConnection(host, int(port or 80), timeout=300)

    def _request(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = self._conn()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200

    def push_blob(self, repo: str, digest: str, size: int, data: bytes | None = None,
                  layer: Layer | None = None) -> str:
        """Make the blob available in `repo`; returns 'present', 'mounted' or 'uploaded'."""
        if self.has_blob(repo, digest):
            self.known.setdefault(digest, repo)
            return "present"
        source = self.known.get(digest)
        query = {"mount": digest, "from": source} if source else {}
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/?{urllib.parse.urlencode(query)}",
                             headers={"Content-Length": "0"})
        if resp.status == 201:
            return "mounted"
        if resp.status != 202:
            raise SandboxError(f"registry {self.address}: starting upload to {repo} failed: "
                               f"HTTP {resp.status}")
        location = resp.getheader("Location") or ""
        parsed = urllib.parse.urlparse(location)
        sep = "&" if parsed.query else "?"
        put_path = f"{parsed.path}{'?' + parsed.query if parsed.query else ''}{sep}digest={digest}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if layer is not None:
            with layer.path.open("rb") as fh:
                resp = self._request("PUT", put_path, body=fh, headers=headers)
        else:
            resp = self._request("PUT", put_path, body=data, headers=headers)
        if resp.status != 201:
            raise SandboxError(f"registry {self.address}: upload of {digest[:19]} to {repo} failed: "
                               f"HTTP {resp.status}")
        self.known[digest] = repo
        return "uploaded"

    def put_manifest(self, repo: str, tag: str, blob: Blob) -> None:
        resp = self._request("PUT", f"/v2/{repo}/manifests/{tag}", body=blob.data,
                             headers={"Content-Type": MANIFEST_TYPE, "Content-Length": str(blob.size)})
        if resp.status != 201:
            raise SandboxError(f"registry {self.address}: manifest {repo}:{tag} rejected: HTTP {resp.status}")
