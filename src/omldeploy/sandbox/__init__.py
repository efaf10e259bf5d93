"""Sandbox: realistic test hosts on one machine, a local registry, test images and an S3 store.

Hosts are systemd-nspawn containers that boot real systemd, run sshd and rootful Podman, each in
its own network namespace on a private bridge. See docs/sandbox.md.

Public API (everything else is internal):
    UpRequest, up, down, status_lines   bring sandboxes up/down (root only)
    Sandbox, Host                       read-only view used by tests and other modules
    S3Info                              endpoint + generated credentials of the S3 store
    SandboxError                        operator errors (printed without traceback by the CLI)
"""

from .api import Host, Sandbox
from .errors import SandboxError
from .lifecycle import UpRequest, down, status_lines, up
from .s3store import S3Info

__all__ = ["Host", "S3Info", "Sandbox", "SandboxError", "UpRequest", "down", "status_lines", "up"]
