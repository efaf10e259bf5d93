"""The arrows point down: inventory -> placement -> render -> apply/ops, never back.

Checked on the source, not by convention: every `omldeploy.*` import (module level or inside a
function) of each package is parsed with `ast` and must name an allowed lower layer. Why it matters:
the scheduled-backup agent ships `backup/` to hosts as it is (a stray import would fail there at 3 am),
and a cycle (components importing placement, render importing backup) is how a change in one layer
silently breaks another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "omldeploy"

# package -> omldeploy packages/modules it may import (besides itself and the package root)
ALLOWED: dict[str, frozenset[str]] = {
    "backup": frozenset(),  # pure: shipped to hosts with the scheduled-backup agent
    "catalog": frozenset(),
    "inventory": frozenset({"catalog"}),
    "components": frozenset({"catalog", "inventory"}),
    "placement": frozenset({"catalog", "inventory", "components"}),
    "render": frozenset({"catalog", "inventory", "components", "placement", "tables"}),
    "dashboards": frozenset(),
    "web": frozenset({"apply", "ops", "state"}),  # read-only pages: never the CLI, never a writer
}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "omldeploy" and len(parts) > 1:
                out.add(parts[1])
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(package: str) -> None:
    root = SRC / package
    files = sorted(root.rglob("*.py")) if root.is_dir() else [SRC / f"{package}.py"]
    assert files, package
    wrong = {f"{f.relative_to(SRC)} imports omldeploy.{m}"
             for f in files for m in imports(f) - ALLOWED[package] - {package}}
    assert not wrong, "\n".join(sorted(wrong))
