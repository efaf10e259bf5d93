"""`tenant destroy`: what is sent to the hosts, what the host side may ever remove, refused combinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from omldeploy.cli.main import main
from omldeploy.ops.destroy import BUCKET_VOLUME, destroy_args, own_bucket_host
from omldeploy.render.build import render_tenant
from tests.hostmodules import load
from tests.unit.conftest import MakeTenant

UTILS = Path(__file__).resolve().parents[3] / "src/omldeploy/apply/ansible/module_utils"


@pytest.fixture(scope="module")
def host_side():  # type: ignore[no-untyped-def]
    load("ansible.module_utils.omldeploy_units", UTILS / "omldeploy_units.py", register=True)
    return load("ansible.module_utils.omldeploy_destroy", UTILS / "omldeploy_destroy.py", register=True)


@pytest.mark.parametrize("path, ok", [
    ("/etc/omnileads/nginx.env", True), ("/etc/omnileads/certs", True), ("/etc/asterisk/custom", True),
    ("/etc/asterisk/custom_1700000000", False), ("/run/omnileads/haproxy", True),  # asides: their own rule
    ("/etc/systemd/system/nginx.service", True), ("/var/lib/omldeploy/t1", True),
    ("/etc/default/nginx.env", True), ("/usr/local/bin/oml_manage", True),
    ("/etc", False), ("/", False), ("/etc/systemd/system", False), ("/var/lib/omldeploy", False),
    ("/etc/omnileads/../passwd", False), ("/etc/omnileads//x", False), ("/etc/asterisk", False),
    ("/home/user", False), ("/etc/passwd", False), ("/etc/default", False), ("/run/dbus", False),
    ("/var/log/journal", False), ("etc/omnileads/x", False), ("/etc/default/sub/x", False),
])
def test_the_host_side_only_ever_removes_under_its_own_prefixes(host_side, path: str, ok: bool) -> None:  # type: ignore[no-untyped-def]
    assert host_side.removable(path) is ok
    if path in ("/etc/default/nginx.env", "/usr/local/bin/oml_manage", "/etc/systemd/system/nginx.service"):
        assert not host_side.removable(path.rsplit("/", 1)[0], folder=True)


def test_the_own_bucket_volume_is_kept_unless_purged(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("aio")
    bundle = render_tenant(tenant)
    hb = bundle.hosts[0]
    assert own_bucket_host(bundle) == hb.host and BUCKET_VOLUME in hb.volumes
    kept = destroy_args(tenant, hb, {BUCKET_VOLUME})
    assert BUCKET_VOLUME not in kept["volumes"] and "oml_postgres" in kept["volumes"]
    assert BUCKET_VOLUME in destroy_args(tenant, hb, set())["volumes"]
    assert all(not v.startswith("/") for v in kept["volumes"])  # host paths are folders, not volumes
    assert kept["phase"] == "destroy" and kept["images"] and kept["files_index"]


def test_a_cloud_tenant_has_no_bucket_of_its_own(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("cloud")
    assert own_bucket_host(render_tenant(tenant)) is None


@pytest.mark.parametrize("layout, args, message", [
    ("aio", ["--purge-bucket", "--keep-backups"], "cannot be combined with --keep-backups"),
    ("cloud", ["--purge-bucket"], "has no bucket of its own"),
])
def test_contradictory_options_are_refused_before_any_host_is_contacted(
        make_tenant: MakeTenant, capsys: pytest.CaptureFixture[str], layout: str, args: list[str],
        message: str) -> None:
    tenant = make_tenant(layout)
    code = main(["tenant", "destroy", "--instances", str(tenant.folder.parent), "--tenant", tenant.name,
                 "--yes", *args])
    assert code == 2 and message in capsys.readouterr().out
    assert tenant.folder.is_dir()


def test_the_owner_marker_outlives_the_folders_it_sits_in(host_side, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    top = tmp_path / "etc-omnileads"
    (top / "certs").mkdir(parents=True)
    (top / "certs" / "key.pem").write_text("k")
    (top / "nginx.env").write_text("x")
    marker = top / "omldeploy-owner"
    marker.write_text("t1\n")
    host_side._rmtree_except(str(top), str(marker))
    assert sorted(p.name for p in top.iterdir()) == ["omldeploy-owner"]
    other = tmp_path / "run"
    (other / "a").mkdir(parents=True)
    host_side._rmtree_except(str(other), str(marker))
    assert not other.exists()
