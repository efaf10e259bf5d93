"""The bundled release catalog: images the tool deploys and OMniLeads releases as image tags.

Everything comes from one data file (`data/catalog.yaml`, described in docs/releases.md), so adding a
release is a data change. A release is *deployable* when every tag it names belongs to an image some
component runs; otherwise it is still listed (operators look releases up) but refused at validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

DATA_FILE = "catalog.yaml"
#: `enterprise_edition: true` runs the web app image at `<tag>-enterprise` (same repository)
ENTERPRISE_SUFFIX = "-enterprise"
# repository path of `repository:tag` version values: Docker's reference grammar without a registry,
# except that it must start with a letter, so a mistyped tag such as 230508:01 stays an error
_REPO_PART = r"[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
REPO_TAG = re.compile(rf"^(?P<repo>{_REPO_PART}):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})$")


@dataclass(frozen=True)
class Release:
    name: str
    date: str
    tags: dict[str, str]  # version key -> tag (or repository:tag)
    note: str = ""
    migrations: bool = False  # a new web app image: its start may run Django schema migrations
    missing: tuple[str, ...] = ()  # what the release needs that omldeploy does not deploy

    @property
    def deployable(self) -> bool:
        return not self.missing

    @property
    def refusal(self) -> str:
        """Why omldeploy cannot deploy this release ("" when it can)."""
        if not self.missing:
            return ""
        return "needs " + ", ".join(self.missing) + ", which this version of omldeploy does not deploy"


@dataclass(frozen=True)
class ImageRef:
    """One image key: registry-less repository, the version key choosing its tag, and tag defaults."""

    key: str
    repo: str
    registry: str
    tag_key: str
    default: str
    alt: str
    optional: bool = False  # deployed only when a release or the inventory names its tag
    same_as: str | None = None  # another tag of that image; falls back to its tag when unset

    def split(self, value: str) -> tuple[str, str]:
        """(repository, tag) of a version value: `repository:tag` names its own repository."""
        match = REPO_TAG.match(value)
        if match:
            return match.group("repo"), match.group("tag")
        return self.repo, value


def _load() -> Any:
    text = resources.files("omldeploy.catalog").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def images() -> dict[str, ImageRef]:
    data = _load()["images"]
    out: dict[str, ImageRef] = {}
    for key, v in data.items():
        base = data[v["same_as"]] if "same_as" in v else v
        out[key] = ImageRef(key, str(base["repo"]), str(base["registry"]), str(v["tag_key"]),
                            str(base["default"]), str(base["alt"]), bool(v.get("optional", False)),
                            v.get("same_as"))
    return out


def tag_keys() -> dict[str, ImageRef]:
    """Version key -> image it selects."""
    return {ref.tag_key: ref for ref in images().values()}


@lru_cache(maxsize=1)
def not_deployed() -> dict[str, str]:
    """Version keys of images upstream releases use and omldeploy does not deploy -> what they are."""
    return {str(k): str(v) for k, v in (_load().get("not_deployed") or {}).items()}


@lru_cache(maxsize=1)
def releases() -> tuple[Release, ...]:
    known = tag_keys()
    out = []
    for row in _load()["releases"]:
        tags = {k: str(v) for k, v in row.items() if k.endswith("_version")}
        missing = tuple(not_deployed().get(k, k) for k in tags if k not in known)
        out.append(Release(str(row["name"]), str(row["date"]), tags, str(row.get("note", "")),
                           bool(row.get("migrations", False)), missing))
    return tuple(out)


def find_release(name: str) -> Release | None:
    for rel in releases():
        if rel.name == name:
            return rel
    return None
