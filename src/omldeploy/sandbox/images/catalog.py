"""The images the tool deploys (catalog/data/catalog.yaml), read here so the sandbox builds exactly
those repositories at their `default` and `alt` tags, plus every `repository:tag` a release names
(the official postgres image of releases 1.32.2 and later), so every catalogued release can run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from omldeploy.catalog import releases as catalog

from ..errors import SandboxError


@dataclass(frozen=True)
class CatalogImage:
    key: str
    repo: str
    default: str
    alt: str
    alias_of: str | None = None  # another tag key of that image (omlcron): built with it, not again


@cache
def load_catalog() -> dict[str, CatalogImage]:
    """All catalog images by key (omlapp, postgres, minio, ...)."""
    try:
        return {k: CatalogImage(k, v.repo, v.default, v.alt, v.same_as) for k, v in catalog.images().items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise SandboxError(f"catalog/data/catalog.yaml is not in the expected shape: {exc}") from exc


@cache
def release_extras() -> dict[str, list[tuple[str, str]]]:
    """Image key -> (repository, tag) pairs releases name outside the image's own repository."""
    by_tag_key = catalog.tag_keys()
    out: dict[str, list[tuple[str, str]]] = {}
    for rel in catalog.releases():
        for tag_key, value in rel.tags.items():
            ref = by_tag_key.get(tag_key)
            if ref is None:
                continue
            repo, tag = ref.split(value)
            if repo != ref.repo and (repo, tag) not in out.get(ref.key, []):
                out.setdefault(ref.key, []).append((repo, tag))
    return out
