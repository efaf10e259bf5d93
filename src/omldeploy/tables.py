"""Plain-text tables, shared by the CLI and the operations' reports (which also go to run logs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "",
                 rule: bool = True) -> list[str]:
    cells = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    fmt = indent + "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers).rstrip()]
    if rule:
        lines.append(fmt.format(*["-" * w for w in widths]).rstrip())
    lines += [fmt.format(*r).rstrip() for r in cells]
    return lines
