"""Grafana dashboards for the provider's central Grafana, versioned with the tool (data/*.json).

They read what omldeploy deploys: every Prometheus series and every Loki stream of a tenant carries the
`tenant`, `host`, `role` and `component` labels (components/prometheus, components/promtail), so one
Grafana shows a fleet and filters by tenant. The queries may only name metrics that the deployed exporters
produce: `metric_names` extracts them, and an e2e test compares them with what a real tenant Prometheus
has scraped, so a renamed exporter metric turns a test red instead of a panel silently empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"

#: PromQL words that are not metric names where an identifier may stand.
_PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "vector", "scalar",
    "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "time", "timestamp", "label_replace",
    "label_join", "histogram_quantile", "absent", "absent_over_time", "changes", "resets", "sort", "sort_desc",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "present_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "exp", "ln", "log2",
    "log10", "sqrt", "inf", "nan",
})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_VARIABLE = re.compile(r"\$\{?\w+\}?")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    kind: str  # prometheus | loki
    expr: str


def names() -> list[str]:
    return sorted(p.stem for p in DATA.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


def queries() -> Iterator[Query]:
    """Every query of every panel (rows included), with the datasource kind it runs on."""
    for name in names():
        dash = load(name)
        stack = list(dash.get("panels", []))
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            kind = str((panel.get("datasource") or {}).get("type", ""))
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if isinstance(expr, str):
                    yield Query(name, str(panel.get("title", "")), kind, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label matchers, groupings and ranges removed,
    then every identifier that is not a PromQL word and not followed by `(`)."""
    text = _VARIABLE.sub("", _STRINGS.sub('""', expr))
    text = _RANGES.sub("", _MATCHERS.sub("", _GROUPING.sub("", text)))
    out: set[str] = set()
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end():].lstrip()
        if word.lower() in _PROMQL_WORDS or rest.startswith("("):
            continue
        if re.fullmatch(r"[0-9eE]+", word):
            continue
        out.add(word)
    return out


def write(out: Path) -> list[Path]:
    """Copy the dashboards into `out` (created); files are replaced, nothing else in the folder is touched."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names():
        target = out / f"omldeploy-{name}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text((DATA / f"{name}.json").read_text(encoding="utf-8"), encoding="utf-8")
        tmp.replace(target)
        written.append(target)
    return written
