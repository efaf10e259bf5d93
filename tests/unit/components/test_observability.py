"""Where a tenant's metrics and logs go: retention and listen address, remote write to a central
Prometheus, a central multi-tenant Loki, and Prometheus on both app nodes in HA (issue 13)."""

from __future__ import annotations

import json

import pytest
import yaml

from omldeploy.inventory import InventoryError
from omldeploy.placement import place
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

PASSWORD = "rw-Secret-9fQz-pL2m"
LOKI_PASSWORD = "lk-Secret-7hGt-xY3w"


def files_of(bundle: object, host: str | None = None) -> dict[str, object]:
    return {f.path: f for hb in bundle.hosts for f in hb.files  # type: ignore[attr-defined]
            if host is None or hb.host == host}


def unit_args(bundle: object, component: str) -> list[str]:
    for hb in bundle.hosts:  # type: ignore[attr-defined]
        for f in hb.files:
            if f.component == component and f.kind in ("unit", "quadlet"):
                return f.content.decode().split()
    raise AssertionError(f"no unit of {component}")


def test_defaults_keep_30_days_of_metrics_and_7_of_logs_on_the_lan_address(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    bundle = render_tenant(tenant)
    args = " ".join(unit_args(bundle, "prometheus"))
    lan = tenant.hosts[0].lan_ip
    assert "--storage.tsdb.retention.time=30d" in args and f"--web.listen-address={lan}:9090" in args
    loki = yaml.safe_load(files_of(bundle)["/etc/omnileads/loki.yml"].content)  # type: ignore[attr-defined]
    assert loki["limits_config"]["retention_period"] == "168h"
    prom = yaml.safe_load(files_of(bundle)["/etc/omnileads/prometheus.yml"].content)  # type: ignore[attr-defined]
    assert "remote_write" not in prom


def test_retention_and_listen_follow_the_inventory(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("aio", vars={"prometheus_retention": "2w", "prometheus_listen": "all",
                                                    "loki_retention": "720h"}))
    args = " ".join(unit_args(bundle, "prometheus"))
    assert "--storage.tsdb.retention.time=2w" in args and "--web.listen-address=0.0.0.0:9090" in args
    loki = yaml.safe_load(files_of(bundle)["/etc/omnileads/loki.yml"].content)  # type: ignore[attr-defined]
    assert loki["limits_config"]["retention_period"] == "720h"


def test_remote_write_password_is_a_file_only_the_image_user_reads(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ait", vars={"prometheus_remote_write_url": "https://mimir.example.com/api/v1/push",
                                      "prometheus_remote_write_user": "tenant-t1",
                                      "prometheus_remote_write_password": PASSWORD})
    bundle = render_tenant(tenant)
    files = files_of(bundle)
    prom_file = files["/etc/omnileads/prometheus.yml"]
    prom = yaml.safe_load(prom_file.content)  # type: ignore[attr-defined]
    assert prom["remote_write"] == [{"url": "https://mimir.example.com/api/v1/push",
                                     "basic_auth": {"username": "tenant-t1",
                                                    "password_file": "/etc/prometheus/remote_write.pass"}}]
    assert PASSWORD.encode() not in prom_file.content  # type: ignore[attr-defined]
    secret = files["/etc/omnileads/prometheus/remote_write.pass"]
    assert secret.content == PASSWORD.encode() and secret.mode == 0o600 and secret.secret  # type: ignore[attr-defined]
    assert secret.owner == 65534  # type: ignore[attr-defined]  # prom/prometheus runs as nobody
    # the manifest (what the host compares) and the stage arguments carry the owner of that file only
    app = next(hb for hb in bundle.hosts if hb.host == "omnileads_app")
    listed = {f["path"]: f for f in app.manifest()["files"]}
    assert listed["/etc/omnileads/prometheus/remote_write.pass"]["owner"] == 65534
    assert "owner" not in listed["/etc/omnileads/prometheus.yml"]
    assert PASSWORD not in json.dumps(app.manifest())
    unit = " ".join(unit_args(bundle, "prometheus"))
    assert "/etc/omnileads/prometheus/remote_write.pass:/etc/prometheus/remote_write.pass:ro" in unit


def test_a_central_loki_gets_every_host_with_the_tenant_header_and_no_tenant_loki(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ha", name="acme_corp", vars={"loki_url": "https://logs.example.net",
                                                       "loki_user": "acme", "loki_password": LOKI_PASSWORD})
    placement = place(tenant)
    assert not any(c.name == "loki" for cs in placement.by_host.values() for c in cs)
    bundle = render_tenant(tenant)
    assert len(bundle.hosts) == 8
    for hb in bundle.hosts:
        files = {f.path: f for f in hb.files}
        conf = yaml.safe_load(files["/etc/omnileads/promtail.yml"].content)
        assert conf["clients"] == [{"url": "https://logs.example.net/loki/api/v1/push", "tenant_id": "acme_corp",
                                    "basic_auth": {"username": "acme", "password_file": "/etc/promtail/loki.pass"}}]
        secret = files["/etc/omnileads/promtail/loki.pass"]
        assert secret.content == LOKI_PASSWORD.encode() and secret.mode == 0o600 and secret.secret
        assert secret.owner is None  # grafana/promtail runs as root: it reads the journal
        assert LOKI_PASSWORD.encode() not in files["/etc/omnileads/promtail.yml"].content


def test_the_tenant_loki_gets_no_tenant_header(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ait"))
    for hb in bundle.hosts:
        conf = yaml.safe_load(next(f.content for f in hb.files if f.path == "/etc/omnileads/promtail.yml"))
        assert conf["clients"] == [{"url": "http://10.10.10.2:3100/loki/api/v1/push"}], hb.host


def test_ha_runs_prometheus_on_both_app_nodes_each_scraping_everything(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ha"))
    configs = {hb.host: yaml.safe_load(f.content) for hb in bundle.hosts for f in hb.files
               if f.path == "/etc/omnileads/prometheus.yml"}
    assert sorted(configs) == ["app_1", "app_2"]
    targets = [sorted(t for job in c["scrape_configs"] if job["job_name"] != "prometheus"
                      for g in job["static_configs"] for t in g["targets"]) for c in configs.values()]
    assert targets[0] == targets[1] and len(targets[0]) >= 8 + 2  # node exporter on all 8, and more
    assert {c["global"]["external_labels"]["replica"] for c in configs.values()} == {"app_1", "app_2"}


@pytest.mark.parametrize(("vars", "key", "words"), [
    ({"loki_url": "https://l.example.net", "loki_host": "10.0.0.9"}, "loki_url", "one Loki"),
    ({"loki_url": "https://l.example.net", "loki_user": "u"}, "loki_password", "needs both"),
    ({"prometheus_remote_write_password": PASSWORD}, "prometheus_remote_write_user", "needs both"),
    ({"prometheus_remote_write_user": "u", "prometheus_remote_write_password": PASSWORD},
     "prometheus_remote_write_url", "are set for it"),
    ({"loki_retention": "36h"}, "loki_retention", "whole number of days"),
    ({"loki_retention": "7 days"}, "loki_retention", "not a duration"),
    ({"prometheus_retention": "0d"}, "prometheus_retention", "not a duration"),
    ({"prometheus_listen": "0.0.0.0"}, "prometheus_listen", "allowed"),
    ({"loki_url": "https://u:pw@l.example.net"}, "loki_url", "credentials"),
    ({"prometheus_remote_write_url": "https://m.example.net/push'\n x: y"}, "prometheus_remote_write_url",
     "http(s) URL"),
    ({"prometheus_remote_write_url": "https://m.example.net:70000/push"}, "prometheus_remote_write_url",
     "http(s) URL"),
    ({"loki_url": "ftp://l.example.net"}, "loki_url", "http(s) URL"),
])
def test_bad_observability_settings_are_refused_clearly(make_tenant: MakeTenant, vars: dict[str, str], key: str,
                                                        words: str) -> None:
    with pytest.raises(InventoryError) as err:
        make_tenant("aio", vars=vars)
    found = [p for p in err.value.problems if p.key == key]
    assert found, [(p.key, p.message) for p in err.value.problems]
    text = " ".join(f"{p.message} {p.allowed}" for p in found)
    assert words in text, text
    everything = " ".join(f"{p.key} {p.message} {p.allowed} {p.found}" for p in err.value.problems)
    assert PASSWORD not in everything


def test_a_managed_postgresql_is_watched_beside_prometheus_when_asked(make_tenant: MakeTenant) -> None:
    plain = render_tenant(make_tenant("cloud"))
    assert not any(u.name == "prometheus_postgres" for hb in plain.hosts for u in hb.units)
    tenant = make_tenant("cloud", name="mon", vars={"postgres_monitoring": True, "postgres_ssl": True})
    bundle = render_tenant(tenant)
    hosts = [hb.host for hb in bundle.hosts if any(u.name == "prometheus_postgres" for u in hb.units)]
    prom_hosts = [hb.host for hb in bundle.hosts if any(u.name == "prometheus" for u in hb.units)]
    assert hosts == prom_hosts and len(hosts) == 1
    env = files_of(bundle, hosts[0])["/etc/default/prometheus_postgres.env"].content.decode()  # type: ignore[attr-defined]
    s = tenant.settings
    assert f"@{s.text('postgres_host')}:{s.num('postgres_port')}/" in env and "sslmode=require" in env
    prom = yaml.safe_load(files_of(bundle, hosts[0])["/etc/omnileads/prometheus.yml"].content)  # type: ignore[attr-defined]
    assert any(g["labels"]["component"] == "postgres" for job in prom["scrape_configs"]
               for g in job["static_configs"])
