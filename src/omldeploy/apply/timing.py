"""Where a run's time went, per host and step: the record `-v` prints, the ledger keeps and `history` shows.

Each step on each host has a wall time (Ansible's own measure of the module task: SSH, Ansible's
start-up on the host and the module) and the module's rows (module_utils/omldeploy_timing.py: file
comparison, image pulls with bytes, each unit's stop/start, health waits, hooks, daemon-reload, the
crash-loop settle). What the module did not account for is the cost of reaching the host, shown as
`ssh+ansible`. The record is plain JSON data so that the ledger can keep it and `history` can show
runs recorded by older versions (which have none).
"""

from __future__ import annotations

from typing import Any

from omldeploy.apply.engine import RunResult

#: the controller-side remainder of a step's wall time
REACH = "ssh+ansible"


def breakdown(result: RunResult) -> dict[str, Any]:
    """The run's total and one entry per host and step, in the order the hosts were listed."""
    steps: list[dict[str, Any]] = []
    for host, hr in result.hosts.items():
        for step, wall in hr.walls.items():
            report = hr.reports.get(step.split("-")[0]) or {}
            rows = [r for r in report.get("timings") or [] if isinstance(r, dict)]
            module = report.get("seconds")
            if isinstance(module, (int, float)):
                rows = [*rows, {"phase": REACH, "what": "", "seconds": round(max(0.0, wall - module), 3)}]
            steps.append({"host": host, "step": step, "wall": round(wall, 3), "rows": rows})
    return {"total": round(result.duration, 3), "steps": steps}


def phase_sums(rows: list[dict[str, Any]]) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """Per phase: its total seconds and its items (largest first); phases largest first."""
    phases: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        phases.setdefault(str(r.get("phase", "?")), []).append((str(r.get("what", "")),
                                                                 float(r.get("seconds") or 0.0)))
    out = [(name, sum(s for _w, s in items), sorted(items, key=lambda i: -i[1])) for name, items in phases.items()]
    return sorted(out, key=lambda p: -p[1])


def describe(timings: dict[str, Any] | None, *, width: int = 4) -> list[str]:
    """Human lines: one per host and step with its wall time and largest phases (at most `width`,
    each naming its largest items)."""
    if not timings or not timings.get("steps"):
        return ["no timing recorded for this run"]
    lines = [f"where the time went ({float(timings.get('total') or 0.0):.1f} s in all; "
             "the steps of one tier run on their hosts at once):"]
    for st in timings["steps"]:
        parts = []
        for name, total, items in phase_sums(list(st.get("rows") or []))[:width]:
            named = [f"{w} {s:.1f}" for w, s in items if w][:3]
            more = f", +{len(items) - 3}" if len([w for w, _s in items if w]) > 3 else ""
            pulled = sum(int(r.get("bytes") or 0) for r in st.get("rows") or [] if r.get("phase") == name)
            size = f", {pulled / 1e6:.0f} MB" if pulled else ""
            inner = f" ({', '.join(named)}{more}{size})" if named else ""
            parts.append(f"{name} {total:.1f}{inner}")
        lines.append(f"  {st.get('host', '?'):<18} {st.get('step', '?'):<11} {float(st.get('wall') or 0.0):6.1f} s  "
                     + ("; ".join(parts) or "-"))
    return lines
