"""Golden renders of the four example layouts.

Regenerate after an intended change (then review the diff in git):

    PYTHONPATH=src python -m tests.unit.render.golden
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omldeploy.inventory import load_tenant
from omldeploy.render.build import render_tenant
from omldeploy.render.write import write_bundle

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"
LAYOUTS = ("aio", "ait", "cloud", "ha", "ha_aio")


def render_layout(layout: str, out: Path) -> None:
    tenant = load_tenant(FIXTURES / layout, layout)
    write_bundle(render_tenant(tenant), out)


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode & 0o7777, p.read_bytes())
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def regenerate() -> None:
    for layout in LAYOUTS:
        out = GOLDEN / layout
        if out.exists():
            shutil.rmtree(out)
        render_layout(layout, out)
        print(f"wrote {out}")


if __name__ == "__main__":
    regenerate()
