"""The fleet on real hosts: four AIO tenants (three Debian 12, one Debian 13) in a sandbox of their own,
installed at once, then operated as a hosting provider would:

  status: `fleet status` over the four plus an invalid tenant and one whose host does not answer;
  drift:  a host changed by hand (a file edited, a unit stopped) is named by `fleet drift` and by
          `drift --tenant`, nothing is changed, and `install` repairs it;
  waves:  `fleet upgrade` whose canary carries a `-broken` web app tag: the canary's health gate fails,
          its own upgrade rolls it back, the rollout halts and the other three are untouched (same
          processes, same images); with the canary's inventory fixed, `--resume` upgrades all four in
          the remaining waves; a further run has nothing to do;
  AWX:    the execution environment's contents run omldeploy in a container on a host.
No secret of any tenant may appear in the output or in the rollout's files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import ee_image  # tests/e2e/ee_image.py
import pytest
import yaml
from commands import Ops, install_all  # tests/e2e/commands.py
from sandboxes import own_sandbox  # tests/e2e is on sys.path (rootdir-relative, no __init__)
from tenants import passwords, set_versions, tags, write_tenant

from omldeploy.inventory import Tenant, load_tenant
from omldeploy.sandbox import Sandbox
from omldeploy.state import ledger

NAME = os.environ.get("OMLDEPLOY_E2E_NAME", "e2e") + "-fl"  # another name runs beside CI
HOSTS = {"fl1": "h1", "fl2": "h2", "fl3": "h3", "fl4": "h4"}


@pytest.fixture(scope="module")
def fl_sandbox() -> Iterator[Sandbox]:
    with own_sandbox(NAME, ("debian12", "debian12", "debian12", "debian13")) as sb:
        yield sb


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fl-instances")


@pytest.fixture(scope="module")
def tenants(fl_sandbox: Sandbox, instances: Path) -> dict[str, Tenant]:
    sb = fl_sandbox
    made = {}
    for name, host in HOSTS.items():
        t = write_tenant(instances, name, "aio", sb, [sb.host(host)])
        set_versions(t, tags("A"))
        made[name] = load_tenant(t.folder, name)
    install_all(made)
    return made


@pytest.fixture
def ops(instances: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Ops]:
    o = Ops(instances, capsys)
    yield o
    texts = list(o.seen)
    for path in (instances / ".omldeploy").rglob("*") if (instances / ".omldeploy").is_dir() else []:
        if path.is_file():
            texts.append(path.read_text())
    for tdir in instances.iterdir():
        if (tdir / "inventory.yml").is_file() and tdir.name in HOSTS:
            for secret in passwords(load_tenant(tdir, tdir.name)):
                assert not any(secret in t for t in texts), f"a secret of {tdir.name} leaked"


def started(sb: Sandbox, host: str) -> str:
    """When each of the host's units last started, and the image each container runs."""
    return sb.run(host, "systemctl show -p Id -p ActiveEnterTimestamp '*.service' | paste - - - | sort; "
                        "podman ps --format '{{.Names}} {{.Image}}' | sort").stdout


def images_of(ops: Ops, tenant: str) -> dict[str, str]:
    code, data = ops.json("status", "--tenant", tenant)
    assert code == 0 and data["healthy"], data
    return {u["unit"]: u["image"] for h in data["hosts"].values() for u in h["units"]}


def test_fleet_status_and_drift_over_four_tenants(fl_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops,
                                                 instances: Path) -> None:
    sb = fl_sandbox
    broken, gone = instances / "broken", instances / "gone"
    broken.mkdir()
    (broken / "inventory.yml").write_text("all:\n  vars: [unclosed\n")
    data = yaml.safe_load((instances / "fl1" / "inventory.yml").read_text())
    nobody = sb.host("h1").ip.rsplit(".", 1)[0] + ".250"  # an address of the sandbox network nobody has
    for hv in data["all"]["hosts"].values():
        hv["ansible_host"] = hv["omni_ip_lan"] = nobody
    gone.mkdir()
    (gone / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    (gone / "inventory.yml").chmod(0o600)
    try:
        code, status = ops.json("fleet", "status", "--timeout", "90", "--parallel", "6")
        assert code == 1, status
        rows = {r["tenant"]: r for r in status["tenants"]}
        assert set(rows) == {*HOSTS, "broken", "gone"}
        for name in HOSTS:
            r = rows[name]
            assert r["health"] == "healthy" and r["drift"] == 0 and r["layout"] == "aio", r
            assert r["last_op"]["action"] == "install" and r["last_op"]["outcome"] == "ok"
            assert r["cert_days_left"] > 700 and r["backups_read"] and r["backup_age_hours"] is None
            assert "no backup found" in " ".join(r["attention"]), r["attention"]
        assert rows["broken"]["health"] == "invalid"
        assert rows["gone"]["health"] in ("unreachable", "timeout") and rows["gone"]["seconds"] < 100
        assert status["summary"]["tenants"] == 6
    finally:
        shutil.rmtree(broken)
        shutil.rmtree(gone)

    # a host changed by hand: fl3's nginx env file edited, its cron unit stopped
    env = "/etc/default/nginx.env"
    sb.run("h3", f"echo 'EXTRA_BY_HAND=1' >> {env} && systemctl stop omlcron.service")
    before = started(sb, "h3")
    code, found = ops.json("fleet", "drift")
    assert code == 1 and found["summary"] == {"tenants": 4, "drifted": 1}
    drifted = {r["tenant"]: r for r in found["tenants"]}
    assert drifted["fl3"]["drifted"] and not any(drifted[n]["drifted"] for n in ("fl1", "fl2", "fl4"))
    what = {(f["kind"], f["what"]) for f in drifted["fl3"]["findings"]}
    assert ("file", env) in what and ("unit", "omlcron") in what, what
    code, out = ops("drift", "--tenant", "fl3", "--diff")
    assert code == 1 and "EXTRA_BY_HAND" in out and "nothing was changed" in out
    assert started(sb, "h3") == before  # read-only: nothing restarted, nothing started
    assert "EXTRA_BY_HAND" in sb.run("h3", f"cat {env}").stdout
    code, out = ops("install", "--tenant", "fl3")
    assert code == 0, out
    code, out = ops("drift", "--tenant", "fl3")
    assert code == 0 and "no drift" in out, out


def test_fleet_upgrade_halts_on_a_broken_canary_then_resumes(fl_sandbox: Sandbox, tenants: dict[str, Tenant],
                                                            ops: Ops, instances: Path) -> None:
    sb = fl_sandbox
    a, b = tags("A"), tags("B")
    new = {"omnileads_version": b["omnileads_version"], "nginx_version": b["nginx_version"]}
    for t in tenants.values():
        set_versions(t, new)
    set_versions(tenants["fl1"], {"omnileads_version": a["omnileads_version"] + "-broken"})  # the canary
    code, plan = ops.json("fleet", "upgrade", "--waves", "1,rest", "--check")
    assert code == 0 and plan["rollout"]["waves"] == [["fl1"], ["fl2", "fl3", "fl4"]], plan
    assert not (instances / ".omldeploy" / "rollouts").exists()

    untouched = {n: started(sb, HOSTS[n]) for n in ("fl2", "fl3", "fl4")}
    code, out = ops("fleet", "upgrade", "--waves", "1,rest", "--parallel", "3", "--no-backup")
    assert code == 1, out
    assert "wave 1/2 (canary): 1 tenant(s): fl1" in out and "fl1: FAILED after" in out and "HALTED" in out
    assert "wave 2/2" not in out
    assert {n: started(sb, HOSTS[n]) for n in untouched} == untouched  # not even a restart
    canary = images_of(ops, "fl1")  # rolled back by its own upgrade: healthy on the old versions
    assert canary["omnileads"].endswith(f":{a['omnileads_version']}"), canary
    assert canary["nginx"].endswith(f":{a['nginx_version']}"), canary
    [state_file] = (instances / ".omldeploy" / "rollouts").glob("*.json")
    state = json.loads(state_file.read_text())
    assert state["status"] == "halted" and state["entries"]["fl1"]["state"] == "failed"
    assert [state["entries"][n]["state"] for n in ("fl2", "fl3", "fl4")] == ["pending"] * 3
    assert ledger.read(instances)[-1].outcome == "halted"
    assert [r.action for r in ledger.read(tenants["fl1"].folder)][-2:] == ["upgrade", "rollback"]

    # the canary's inventory is fixed (the automatic rollback had put the old versions back in it)
    set_versions(tenants["fl1"], new)
    code, out = ops("fleet", "upgrade", "--resume", "--parallel", "3", "--no-backup")
    assert code == 0, out
    assert "done: 4 upgraded" in out and "wave 2/2: 3 tenant(s): fl2, fl3, fl4" in out
    for name in HOSTS:
        running = images_of(ops, name)
        assert running["omnileads"].endswith(f":{b['omnileads_version']}"), (name, running)
        assert running["nginx"].endswith(f":{b['nginx_version']}"), (name, running)
    assert json.loads(state_file.read_text())["status"] == "done"
    code, out = ops("fleet", "upgrade")
    assert code == 0 and "nothing to upgrade" in out, out


def test_the_execution_environment_runs_omldeploy_in_a_container(fl_sandbox: Sandbox,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """docs/awx.md: the package and its CLI run in a container on a host, with the tenant folder (the AWX
    project's instances/) mounted, nothing from this checkout (tests/e2e/ee_image.py says what it holds)."""
    sb = fl_sandbox
    work = tmp_path_factory.mktemp("ee")
    ref = ee_image.push(sb.registry, ee_image.build_wheel(work), work)
    project = work / "instances"
    t = write_tenant(project, "eeone", "aio", sb, [sb.host("h2")])
    sb.run("h1", "install -d -m 0700 /srv/project/instances/eeone")
    sb.run("h1", "cat > /srv/project/instances/eeone/inventory.yml && chmod 600 /srv/project/instances/eeone/*",
           input_text=t.inventory_path.read_text())
    podman = f"podman run --rm --network=host -v /srv/project:/runner/project {ref} omldeploy"
    version = sb.run("h1", f"{podman} --version", timeout=300)
    assert version.stdout.startswith("omldeploy "), version.stdout
    valid = sb.run("h1", f"{podman} --instances /runner/project/instances validate --tenant eeone --json",
                   check=False, timeout=300)
    assert valid.returncode == 0 and json.loads(valid.stdout)["valid"], valid.stdout + valid.stderr
    plan = sb.run("h1", f"{podman} --instances /runner/project/instances plan --tenant eeone", timeout=300)
    assert "postgresql" in plan.stdout and "omnileads" in plan.stdout
    # the tenant's state was written into the mounted project, as a job on a persistent volume keeps it
    assert sb.run("h1", "test -d /srv/project/instances/eeone/.omldeploy", check=False).returncode == 0
    where = sb.run("h1", f"podman run --rm {ref} python3 -c 'import omldeploy; print(omldeploy.__file__)'")
    assert where.stdout.strip() == f"/{ee_image.SITE}/omldeploy/__init__.py"
