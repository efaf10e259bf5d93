"""Discovers the component folders: every subpackage of `omldeploy.components` exporting COMPONENT."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from pathlib import Path

from omldeploy.components.base import Component


@lru_cache(maxsize=1)
def all_components() -> tuple[Component, ...]:
    import omldeploy.components as pkg

    found: list[Component] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"omldeploy.components.{info.name}")
        comp = getattr(module, "COMPONENT", None)
        if comp is None:
            continue
        type(comp)._folder = Path(str(module.__file__)).parent
        found.append(comp)
    return tuple(sorted(found, key=lambda c: (c.start_order, c.name)))


def by_name(name: str) -> Component:
    for comp in all_components():
        if comp.name == name:
            return comp
    raise KeyError(name)
