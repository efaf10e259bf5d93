"""The image list the tool deploys (catalog/data/images.yaml), read here so the sandbox builds
exactly those repositories at both their `default` and `alt` tags."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from ..errors import SandboxError


@dataclass(frozen=True)
class CatalogImage:
    key: str
    repo: str
    default: str
    alt: str


@cache
def load_catalog() -> dict[str, CatalogImage]:
    """All catalog images by key (omlapp, postgres, minio, ...)."""
    text = resources.files("omldeploy.catalog").joinpath("data/images.yaml").read_text()
    data = yaml.safe_load(text)
    try:
        return {k: CatalogImage(k, str(v["repo"]), str(v["default"]), str(v["alt"]))
                for k, v in data["images"].items()}
    except (KeyError, TypeError) as exc:
        raise SandboxError(f"catalog/data/images.yaml is not in the expected shape: {exc}") from exc
