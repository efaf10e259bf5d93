"""A sandbox of its own for one e2e module (backup/restore, HA), beside the session's: created fresh,
with registry, S3 store and every test image, and removed afterwards unless OMLDEPLOY_E2E_KEEP=1."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from omldeploy.sandbox import Sandbox, UpRequest, down, up
from omldeploy.sandbox.images.build import build_and_push


@contextlib.contextmanager
def own_sandbox(name: str, oses: tuple[str, ...]) -> Iterator[Sandbox]:
    st = up(UpRequest(name=name, hosts=len(oses), oses=oses, registry=True, s3=True))
    try:
        build_and_push(st, only=None)
        yield Sandbox(st)
    finally:
        if os.environ.get("OMLDEPLOY_E2E_KEEP") != "1":
            down(name)
