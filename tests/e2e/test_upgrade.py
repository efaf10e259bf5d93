"""upgrade / rollback / per-component actions on real AIO hosts: h10 (Debian 12, classic units) for
everything, h11 (Debian 13, Quadlet, systemd 257) for upgrade, rollback and the failed health gate.

The sandbox registry holds every image at two tags (`default` = A, `alt` = B) and a `-broken`
variant that refuses to start, so upgrades, rollbacks and failed health gates are real. A broken web
app crash-loops into systemd's start limit within seconds; the automatic rollback that follows must
still start it (systemd 257 refused it until the engine cleared the failed state first).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.commands import power_off_when_done
from tests.e2e.tenants import set_versions, tags, write_tenant

from omldeploy.inventory import Tenant
from omldeploy.sandbox import Sandbox
from omldeploy.state import ledger

ROOT = Path(__file__).resolve().parents[2]
HOST = "h10"
HOSTS = {"upg": "h10", "upg13": "h11"}  # tenant -> sandbox host


def cli(instances: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(instances), *args],
                          capture_output=True, text=True, env=env, timeout=900)


def running_images(instances: Path, tenant: str) -> dict[str, str]:
    proc = cli(instances, "status", "--tenant", tenant, "--json")
    data = json.loads(proc.stdout)
    assert data["healthy"], proc.stdout
    return {u["unit"]: u["image"] for h in data["hosts"].values() for u in h["units"]}


def unit_starts(sandbox: Sandbox) -> str:
    return sandbox.run(HOST, "systemctl show -p ActiveEnterTimestamp '*.service' | sort | md5sum; "
                             "md5sum /etc/default/*.env /etc/systemd/system/*.service | md5sum").stdout


def rows(sandbox: Sandbox, tenant: Tenant) -> str:
    user, db = tenant.settings.text("postgres_user"), tenant.settings.text("postgres_database")
    return sandbox.run(HOSTS[tenant.name], f"podman exec oml-postgresql-server psql -U {user} -d {db} -tAc "
                             "'select count(*), sum(n) from upgrade_probe'").stdout.strip()


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-upgrade") / "instances"


def installed(sandbox: Sandbox, instances: Path, name: str, os_name: str) -> Tenant:
    host = sandbox.host(HOSTS[name])
    assert host.os == os_name
    tenant = write_tenant(instances, name, "aio", sandbox, [host])
    set_versions(tenant, tags("A"))
    proc = cli(instances, "install", "--tenant", name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    user, db = tenant.settings.text("postgres_user"), tenant.settings.text("postgres_database")
    sandbox.run(host.name, f"podman exec oml-postgresql-server psql -U {user} -d {db} -c "
                           "'create table upgrade_probe as select g as n from generate_series(1, 5000) g'")
    return tenant


@pytest.fixture(scope="module", autouse=True)
def _hosts_off_at_the_end(sandbox: Sandbox) -> Iterator[None]:
    """h10 and h11 go dark once this module is over: their tenants would idle under the later tiers."""
    yield
    power_off_when_done(sandbox, tuple(HOSTS.values()))


@pytest.fixture(scope="module")
def aio(sandbox: Sandbox, instances: Path) -> Tenant:
    return installed(sandbox, instances, "upg", "debian12")


@pytest.fixture(scope="module")
def aio13(sandbox: Sandbox, instances: Path) -> Tenant:
    return installed(sandbox, instances, "upg13", "debian13")


@pytest.fixture(params=["aio", "aio13"], ids=["debian12", "debian13"])
def upg(request: pytest.FixtureRequest) -> Tenant:
    """Both OSes: the upgrade and rollback paths differ with the systemd version (start limit)."""
    tenant: Tenant = request.getfixturevalue(request.param)
    return tenant


def test_upgrade_a_to_b_then_rollback(upg: Tenant, sandbox: Sandbox, instances: Path) -> None:
    name = upg.name
    before = rows(sandbox, upg)
    set_versions(upg, tags("B"))
    proc = cli(instances, "upgrade", "--tenant", name, "--no-backup")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WITHOUT a pre-upgrade backup" in proc.stderr + proc.stdout
    assert re.search(r"upgrade took \d+\.\d+s in all \(apply \d+\.\d+s\)", proc.stdout), proc.stdout
    running = running_images(instances, name)
    b = tags("B")
    assert running["omnileads"].endswith(f"/omnileads/omlapp:{b['omnileads_version']}")
    assert running["nginx"].endswith(f"/omnileads/nginx:{b['nginx_version']}")
    assert running["postgresql"].endswith(f"/omnileads/postgres:{b['postgres_version']}")
    assert rows(sandbox, upg) == before
    rec = ledger.read(upg.folder)[-1]
    assert rec.action == "upgrade" and rec.outcome == "ok" and rec.versions["nginx_version"] == b["nginx_version"]

    listing = cli(instances, "rollback", "--tenant", name, "--list")
    assert listing.returncode == 0 and "upgrade" in listing.stdout and "install" in listing.stdout
    back = cli(instances, "rollback", "--tenant", name)
    assert back.returncode == 0, back.stdout + back.stderr
    a = tags("A")
    running = running_images(instances, name)
    assert running["omnileads"].endswith(f":{a['omnileads_version']}") and running["nginx"].endswith(
        f":{a['nginx_version']}")
    assert f"nginx_version: {a['nginx_version']}" in upg.inventory_path.read_text()  # inventory kept in step
    assert rows(sandbox, upg) == before


def test_failed_health_gate_rolls_back_by_itself(upg: Tenant, sandbox: Sandbox, instances: Path) -> None:
    """The reproduction of the Debian 13 defect: a broken web app crash-loops into the start limit, and
    the automatic rollback must bring it back all the same."""
    name = upg.name
    a = tags("A")
    broken = a["omnileads_version"] + "-broken"
    set_versions(upg, {**a, "omnileads_version": broken})
    proc = cli(instances, "upgrade", "--tenant", name, "--no-backup")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "omnileads.service failed" in out and "systemd stopped restarting it" in out, out
    assert "did not become healthy within" not in out  # a crash loop is not worded as a slow health check
    assert "rolling back automatically" in out
    assert "rolled back: every component runs the previous versions and is healthy" in out, out
    assert "REFUSED" not in out
    running = running_images(instances, name)  # asserts healthy
    assert running["omnileads"].endswith(f"/omnileads/omlapp:{a['omnileads_version']}")
    assert [r.action for r in ledger.read(upg.folder)[-2:]] == ["upgrade", "rollback"]
    # the inventory no longer names the broken tag, so a plain re-run of install keeps the healthy one
    text = upg.inventory_path.read_text()
    assert broken not in text and f"omnileads_version: {a['omnileads_version']}" in text
    assert broken in (upg.folder / "inventory.yml.bak").read_text()
    again = cli(instances, "install", "--tenant", name)
    assert again.returncode == 0 and ledger.read(upg.folder)[-1].restarted == [], again.stdout


def test_missing_tag_stops_nothing_and_changes_nothing(aio: Tenant, sandbox: Sandbox, instances: Path) -> None:
    a = tags("A")
    before = unit_starts(sandbox)
    set_versions(aio, {**a, "omnileads_version": "9.9.9-does-not-exist"})
    proc = cli(instances, "upgrade", "--tenant", "upg", "--no-backup")
    set_versions(aio, a)
    assert proc.returncode == 1
    assert "cannot pull" in proc.stdout and "refused before anything changed" in proc.stdout
    assert unit_starts(sandbox) == before


def test_per_component_actions_touch_only_their_component(aio: Tenant, sandbox: Sandbox, instances: Path) -> None:
    def deploy(action: str) -> ledger.Record:
        proc = cli(instances, action, "--tenant", "upg")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rec = ledger.read(aio.folder)[-1]
        assert rec.action == action
        return rec

    sandbox.run(HOST, "systemctl stop nginx")
    assert deploy("nginx").restarted == ["omnileads_aio:nginx"]
    sandbox.run(HOST, "systemctl stop asterisk")
    assert deploy("voice").restarted == ["omnileads_aio:asterisk"]
    assert deploy("redis").restarted == []
    assert deploy("postgres").restarted == []
    inv = aio.inventory_path
    inv.write_text(inv.read_text().replace("SCA: 3600", "SCA: 7200"))
    rec = deploy("app")
    assert sorted(rec.restarted) == ["omnileads_aio:daphne", "omnileads_aio:omlcron",
                                     "omnileads_aio:omnileads"]
    assert deploy("install").restarted == []


def started_at(sandbox: Sandbox, unit: str) -> str:
    return sandbox.run(HOST, f"systemctl show -p ActiveEnterTimestampMonotonic --value {unit}.service").stdout.strip()


def test_restart_actions_restart_their_set_in_order_with_health(aio: Tenant, sandbox: Sandbox,
                                                                instances: Path) -> None:
    pg = started_at(sandbox, "postgresql")
    proc = cli(instances, "restart_django", "--tenant", "upg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = ledger.read(aio.folder)[-1]
    assert rec.action == "restart_django" and rec.outcome == "ok"
    assert sorted(rec.restarted) == ["omnileads_aio:daphne", "omnileads_aio:nginx", "omnileads_aio:omnileads"]
    redis_before = started_at(sandbox, "redis")
    proc = cli(instances, "restart", "--tenant", "upg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    restarted = set(ledger.read(aio.folder)[-1].restarted)
    assert {"omnileads_aio:redis", "omnileads_aio:asterisk", "omnileads_aio:nginx"} <= restarted
    assert "omnileads_aio:postgresql" not in restarted
    assert started_at(sandbox, "redis") != redis_before
    assert started_at(sandbox, "postgresql") == pg  # the database is never part of a restart set
    running_images(instances, "upg")  # healthy afterwards


def set_channels(sandbox: Sandbox, n: int | None) -> None:
    """The Asterisk stand-in reports `n` channels up (AMI CoreShowChannels, res_prometheus)."""
    d = sandbox.run(HOST, "podman volume inspect --format '{{.Mountpoint}}' asterisk_logs").stdout.strip()
    assert d, "no asterisk_logs volume"
    sandbox.run(HOST, f"rm -f {d}/sandbox-channels" if n is None else f"echo {n} > {d}/sandbox-channels")


def test_voice_restarts_wait_for_the_calls_to_end(aio: Tenant, sandbox: Sandbox, instances: Path) -> None:
    """Issue 14, item 6: `restart_asterisk` with calls up waits (progress shown) and restarts only once
    they ended; at voice_drain_timeout it restarts anyway and says how many were up; --force skips it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    inv = aio.inventory_path
    original = inv.read_text()
    try:
        set_channels(sandbox, 2)
        before = started_at(sandbox, "asterisk")
        proc = subprocess.Popen([sys.executable, "-m", "omldeploy", "--instances", str(instances), "restart_asterisk",
                                 "--tenant", "upg"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:  # waits on the tool's own progress, not on a sleep
            seen.append(line)
            if "2 channel(s) up" in line and "asked 2 time(s)" in line:
                break
        assert any("waiting" in ln and "asterisk" in ln for ln in seen), "".join(seen)
        assert started_at(sandbox, "asterisk") == before  # the calls are still up: not restarted
        set_channels(sandbox, 0)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, "".join(seen) + out
        assert "no call up; asterisk restart(s) now" in out, out
        assert started_at(sandbox, "asterisk") != before
        waited = ledger.read(aio.folder)[-1].extra["timings"]["steps"]
        assert any(s["step"] == "calls" and s["wall"] >= 3 for s in waited), waited  # in `history` too

        # the deadline: restarted anyway, the operator told how many calls were dropped
        inv.write_text(re.sub(r"^(\s*)vars:\s*$", r"\g<0>\n\g<1>  voice_drain_timeout: 6", original, count=1,
                              flags=re.M))
        set_channels(sandbox, 1)
        before = started_at(sandbox, "asterisk")
        done = cli(instances, "restart_asterisk", "--tenant", "upg")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 channel(s) still up when voice_drain_timeout ran out: asterisk restarted anyway" in done.stderr
        assert started_at(sandbox, "asterisk") != before

        # --force: no wait at all
        before = started_at(sandbox, "asterisk")
        forced = cli(instances, "restart_asterisk", "--tenant", "upg", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "without waiting for calls" in forced.stdout and "channel(s)" not in forced.stdout + forced.stderr
        assert started_at(sandbox, "asterisk") != before
    finally:
        inv.write_text(original)
        set_channels(sandbox, None)
    running_images(instances, "upg")


def test_update_writes_and_pulls_but_restarts_nothing(aio: Tenant, sandbox: Sandbox, instances: Path) -> None:
    inv = aio.inventory_path
    text = inv.read_text()
    new = text.replace("SCA: 7200", "SCA: 5400") if "SCA: 7200" in text else text.replace("SCA: 3600", "SCA: 5400")
    assert new != text
    inv.write_text(new)
    before = started_at(sandbox, "omnileads")
    proc = cli(instances, "update", "--tenant", "upg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = ledger.read(aio.folder)[-1]
    assert rec.action == "update" and rec.restarted == [] and rec.changed > 0
    assert "waiting for a restart:" in proc.stdout and "omnileads" in proc.stdout
    assert started_at(sandbox, "omnileads") == before
    assert "5400" in sandbox.run(HOST, "cat /etc/default/django.env").stdout
    proc = cli(instances, "install", "--tenant", "upg")  # finishes exactly the pending restarts
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "omnileads_aio:omnileads" in ledger.read(aio.folder)[-1].restarted


def test_recycle_removes_old_versions_only(aio: Tenant, sandbox: Sandbox, instances: Path) -> None:
    old = sandbox.image_ref("redis", "alt")
    sandbox.run(HOST, f"podman pull -q {old} >/dev/null")
    check = cli(instances, "recycle", "--tenant", "upg", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"would remove image {old}" in check.stdout
    assert sandbox.run(HOST, f"podman image exists {old}", check=False).returncode == 0  # check removed nothing
    proc = cli(instances, "recycle", "--tenant", "upg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sandbox.run(HOST, f"podman image exists {old}", check=False).returncode == 1
    running = running_images(instances, "upg")  # still healthy, and what runs is still on the host
    for image in running.values():
        assert sandbox.run(HOST, f"podman image exists {image}", check=False).returncode == 0
    again = cli(instances, "recycle", "--tenant", "upg")
    assert again.returncode == 0 and "removed image" not in again.stdout
