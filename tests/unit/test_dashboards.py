"""The shipped Grafana dashboards: well-formed, on the labels the tool sets, and the CLI that writes them.

Whether each metric a query names is really produced is checked against a live tenant Prometheus in
tests/e2e/test_install.py (test_prometheus_scrapes_every_target_with_labels_and_dashboards_name_real_metrics).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from omldeploy import dashboards
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant
from tests.unit.inventory.conftest import run_cli

LABELS = {"tenant", "host", "role", "component"}


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (tenant) (up{tenant=~"$tenant"})', {"up"}),
    ('1 - avg by (tenant, host) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', {"node_cpu_seconds_total"}),
    ('count(a_b{x="y"} == 0) or on() vector(0)', {"a_b"}),
    ('rate(x_total[5m]) + rate(y_total{a="by (z)"}[1h])', {"x_total", "y_total"}),
    ('node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes', {"node_memory_MemAvailable_bytes",
                                                                    "node_memory_MemTotal_bytes"}),
    ('histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))', {"h_bucket"}),
])
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert dashboards.metric_names(expr) == names


def test_every_dashboard_is_importable_and_uses_its_datasource_variable() -> None:
    assert dashboards.names() == ["logs", "overview"]
    for name in dashboards.names():
        dash = dashboards.load(name)
        assert dash["uid"].startswith("omldeploy-") and dash["schemaVersion"] >= 36 and dash["title"]
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and "tenant" in variables
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dash["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])


def test_queries_filter_on_the_tenant_and_name_only_labels_the_tool_sets() -> None:
    found = list(dashboards.queries())
    assert len(found) >= 20
    kinds = {q.kind for q in found}
    assert kinds == {"prometheus", "loki"}
    for q in found:
        assert 'tenant=~"$tenant"' in q.expr, q
        for matcher in re.findall(r"\{([^}]*)\}", q.expr.replace("{{", "").replace("}}", "")):
            used = {m.split("=")[0].strip(" !~") for m in re.findall(r'\w+\s*[=!]~?\s*"', matcher)}
            allowed = LABELS | {"mode", "mountpoint", "state", "unit"} if q.kind == "prometheus" else LABELS
            assert used <= allowed, (q.panel, used - allowed)
        if q.kind == "prometheus":
            names = dashboards.metric_names(q.expr)
            assert names, q
            assert all(re.match(r"(up$|node_|pg_|redis_|asterisk_)", n) for n in names), (q.panel, names)


def test_the_tenant_prometheus_and_promtail_put_the_four_labels_on_everything(make_tenant: MakeTenant) -> None:
    for layout in ("aio", "ait"):
        bundle = render_tenant(make_tenant(layout, name=f"lab{layout}"))
        files = {f.path: f.content for hb in bundle.hosts for f in hb.files}
        prom = yaml.safe_load(files["/etc/omnileads/prometheus.yml"])
        groups = [g for job in prom["scrape_configs"] for g in job["static_configs"]]
        assert len(groups) >= 4
        for g in groups:
            assert set(g["labels"]) == LABELS and g["labels"]["tenant"] == f"lab{layout}"
        for hb in bundle.hosts:
            tail = yaml.safe_load(next(f.content for f in hb.files if f.path == "/etc/omnileads/promtail.yml"))
            job = tail["scrape_configs"][0]
            assert {"tenant", "host", "role"} <= set(job["journal"]["labels"])
            assert any(r.get("target_label") == "component" for r in job["relabel_configs"])


def test_node_exporter_reports_exactly_the_units_placed_on_its_host(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ait", name="units"))
    for hb in bundle.hosts:
        unit = next(f.content.decode() for f in hb.files if f.component == "prometheus_node_exporter"
                    and f.kind in ("unit", "quadlet"))
        pattern = re.search(r"--collector\.systemd\.unit-include=(\S+?)\"?$", unit, re.M)
        assert pattern and "--collector.systemd " in unit + " ", unit
        regex = re.compile(pattern.group(1))
        for u in hb.units:
            assert regex.fullmatch(f"{u.name}.service"), (hb.host, u.name)
        assert not regex.fullmatch("ssh.service") and not regex.fullmatch("nginx.service.evil")


def test_cli_writes_the_dashboards_and_observability_still_needs_a_tenant(tmp_path: Path) -> None:
    out = tmp_path / "grafana"
    result = run_cli("observability", "dashboards", "--out", str(out))
    assert result.code == 0, result.err
    written = sorted(p.name for p in out.iterdir())
    assert written == ["omldeploy-logs.json", "omldeploy-overview.json"]
    assert json.loads((out / "omldeploy-overview.json").read_text())["uid"] == "omldeploy-overview"
    again = run_cli("observability", "dashboards", "--out", str(out))
    assert again.code == 0 and sorted(p.name for p in out.iterdir()) == written
    missing = run_cli("--instances", str(tmp_path), "observability")
    assert missing.code == 2 and "--tenant" in missing.err
    blocked = tmp_path / "file"
    blocked.write_text("x")
    refused = run_cli("observability", "dashboards", "--out", str(blocked / "sub"))
    assert refused.code == 2 and "cannot write" in refused.err
