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


def operator_bucket(sb: Sandbox, name: str) -> None:
    """The external bucket an operator creates before an HA install (HA deploys no MinIO)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=sb.s3.endpoint, aws_access_key_id=sb.s3.access_key,
                      aws_secret_access_key=sb.s3.secret_key, region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                    retries={"mode": "standard", "max_attempts": 6}))
    if name not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=name)
