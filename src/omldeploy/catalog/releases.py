"""The bundled release catalog and the image table, read from the data files beside this module."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class Release:
    name: str
    date: str
    tags: dict[str, str]  # version key -> tag
    note: str = ""


@dataclass(frozen=True)
class ImageRef:
    """One image: registry-less repository, the inventory key choosing its tag, and tag defaults."""

    key: str
    repo: str
    registry: str
    tag_key: str
    default: str
    alt: str


def _load(name: str) -> Any:
    text = resources.files("omldeploy.catalog").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def releases() -> tuple[Release, ...]:
    out = []
    for row in _load("releases.yaml")["releases"]:
        tags = {k: str(v) for k, v in row.items() if k.endswith("_version")}
        out.append(Release(str(row["name"]), str(row["date"]), tags, str(row.get("note", ""))))
    return tuple(out)


def find_release(name: str) -> Release | None:
    for rel in releases():
        if rel.name == name:
            return rel
    return None


@lru_cache(maxsize=1)
def images() -> dict[str, ImageRef]:
    data = _load("images.yaml")["images"]
    return {
        key: ImageRef(key, str(v["repo"]), str(v["registry"]), str(v["tag_key"]), str(v["default"]),
                      str(v["alt"]))
        for key, v in data.items()
    }
