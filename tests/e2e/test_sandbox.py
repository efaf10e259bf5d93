"""The sandbox itself: hosts boot and are reachable, Podman units run, images come from the local
registry, the S3 store works, the clock guard holds, and `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from omldeploy.sandbox import Host, S3Info, Sandbox, UpRequest, down, up
from omldeploy.sandbox.paths import state_dir

PG_ENV = "POSTGRES_USER=oml\nPOSTGRES_PASSWORD=e2e-secret-1\nPOSTGRES_DB=omnileads\n"

SEED_UNIT = """\
[Unit]
Description=PostgreSQL (seed-style podman unit, sandbox e2e)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=%t/containers

[Service]
Environment=PODMAN_SYSTEMD_UNIT=%n
Restart=on-failure
TimeoutStopSec=70
ExecStartPre=/bin/rm -f %t/%n.ctr-id
ExecStart=/usr/bin/podman run --cidfile=%t/%n.ctr-id --cgroups=no-conmon --sdnotify=conmon --replace \
 --detach --rm --network=host --env-file=/etc/default/postgres.env --name=oml-postgresql-server \
 --volume=oml_postgres:/var/lib/postgresql/data {image} postgres -c listen_addresses=*
ExecStop=/usr/bin/podman stop --ignore --cidfile=%t/%n.ctr-id
ExecStopPost=/usr/bin/podman rm -f --ignore --cidfile=%t/%n.ctr-id
Type=notify
NotifyAccess=all

[Install]
WantedBy=default.target
"""

QUADLET = """\
[Unit]
Description=Loki stand-in as a Quadlet unit (sandbox e2e)

[Container]
Image={image}
ContainerName=sbx-loki
Network=host

[Service]
Restart=on-failure

[Install]
WantedBy=default.target
"""


def test_every_host_answers_ssh_with_strict_host_keys(sandbox: Sandbox, sandbox_hosts: list[Host]) -> None:
    assert "StrictHostKeyChecking yes" in sandbox.ssh_config.read_text()
    for host in sandbox_hosts:
        out = sandbox.run(host.name, "hostname; . /etc/os-release; echo $VERSION_ID").stdout.split()
        assert out == [host.name, {"debian12": "12", "debian13": "13"}[host.os]]
        # by address too, as Ansible will connect (ansible_host)
        assert sandbox.run(host.ip, "hostname").stdout.strip() == host.name


def test_engine_reaches_hosts_with_unsafe_tagged_connection_values(sandbox: Sandbox, debian12_host: Host,
                                                                 tmp_path: Path) -> None:
    """The runner inventory tags every value `!unsafe` (issue 12, M1): the real SSH connection still reads
    them (key file, ssh args, user), and a hostile value next to them runs nothing on the controller."""
    from dataclasses import replace

    from tests.unit.conftest import EXAMPLES, fill_placeholders

    from omldeploy.apply.engine import Step, run_steps
    from omldeploy.inventory import load_text

    folder = tmp_path / "t1"
    folder.mkdir()
    text = fill_placeholders((EXAMPLES / "inventory_aio.yml").read_text())
    tenant = load_text(text, folder / "inventory.yml", folder, "t1")
    marker = tmp_path / "pwned"
    hostile = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    conn = {**sandbox.ansible_connection_vars(), "ansible_omldeploy_note": hostile}
    host = replace(tenant.hosts[0], address=debian12_host.ip, port=22, connection=conn)
    tenant = replace(tenant, hosts=(host,))
    result = run_steps(tenant, [Step("ping", "ansible.builtin.ping", {host.name: {"data": hostile}})])
    assert result.aborted is None, result.aborted
    assert result.ok and not result.hosts[host.name].unreachable, result.hosts[host.name]
    assert not marker.exists()


def test_systemd_is_running_on_every_host(sandbox: Sandbox, sandbox_hosts: list[Host]) -> None:
    for host in sandbox_hosts:
        state = sandbox.run(host.name, "systemctl is-system-running", check=False).stdout.strip()
        failed = sandbox.run(host.name, "systemctl --failed --no-legend --plain", check=False).stdout.strip()
        if state == "degraded":
            print(f"{host.name} is degraded; failed units:\n{failed}")
        assert state in ("running", "degraded"), f"{host.name}: {state}; failed units:\n{failed}"


def test_podman_uses_runc_and_overlay_storage(sandbox: Sandbox, sandbox_hosts: list[Host]) -> None:
    expected = {"debian12": "4.3", "debian13": "5.4"}
    for host in sandbox_hosts:
        info = sandbox.run(host.name, "podman info --format '{{.Store.GraphDriverName}} "
                                      "{{.Host.OCIRuntime.Name}} {{.Version.Version}}'").stdout.split()
        assert info[:2] == ["overlay", "runc"], (host.name, info)
        assert info[2].startswith(expected[host.os]), (host.name, info)


def test_images_are_pulled_from_the_local_registry(sandbox: Sandbox, debian12_host: Host,
                                                    sandbox_images: dict[str, dict[str, str]]) -> None:
    # every catalog image exists at its default, alt and broken tags
    for refs in sandbox_images.values():
        for ref in refs.values():
            repo, _, tag = ref.split("/", 1)[1].rpartition(":")
            url = f"http://{sandbox.registry}/v2/{repo}/manifests/{tag}"
            req = urllib.request.Request(url, method="HEAD",
                                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200, ref
    # a real pull on a host, at both tags; the image says which tag it is
    for tag in ("default", "alt"):
        ref = sandbox_images["redis"][tag]
        sandbox.run(debian12_host.name, f"podman pull -q {ref}", timeout=300)
        inspect = f"podman image inspect --format '{{{{json .Config.Env}}}}' {ref}"
        env = json.loads(sandbox.run(debian12_host.name, inspect).stdout)
        assert f"SANDBOX_IMAGE={ref.split('/', 1)[1]}" in env


def test_broken_variant_refuses_to_start(sandbox: Sandbox, debian12_host: Host,
                                         sandbox_images: dict[str, dict[str, str]]) -> None:
    broken = sandbox_images["omlapp"]["broken"]
    proc = sandbox.run(debian12_host.name, f"podman run --rm --network=host {broken}",
                       check=False, timeout=300)
    assert proc.returncode != 0
    assert "SANDBOX_UNHEALTHY=start" in proc.stderr + proc.stdout


def test_seed_style_unit_on_debian12_is_reachable_from_another_host(
        sandbox: Sandbox, debian12_host: Host, sandbox_hosts: list[Host],
        sandbox_images: dict[str, dict[str, str]]) -> None:
    image = sandbox_images["postgres"]["default"]
    other = next(h for h in sandbox_hosts if h.name != debian12_host.name)
    h = debian12_host.name
    sandbox.run(h, "cat > /etc/default/postgres.env", input_text=PG_ENV)
    sandbox.run(h, "cat > /etc/systemd/system/postgresql.service", input_text=SEED_UNIT.format(image=image))
    sandbox.run(h, f"podman pull -q {image} && systemctl daemon-reload && systemctl start postgresql.service",
                timeout=300)
    try:
        assert sandbox.run(h, "systemctl is-active postgresql.service").stdout.strip() == "active"
        query = (f"podman run --rm --network=host -e PGPASSWORD=e2e-secret-1 {image} "
                 f"psql -h {debian12_host.ip} -U oml -d omnileads -tAc 'select 40 + 2'")
        sandbox.run(other.name, f"podman pull -q {image}", timeout=300)
        deadline = time.monotonic() + 30
        while True:
            proc = sandbox.run(other.name, query, check=False, timeout=120)
            if proc.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert proc.stdout.strip() == "42", proc.stderr
        # restart works (the cidfile left by podman 4.3 is removed by ExecStartPre)
        sandbox.run(h, "systemctl restart postgresql.service")
        assert sandbox.run(h, "systemctl is-active postgresql.service").stdout.strip() == "active"
    finally:
        sandbox.run(h, "systemctl stop postgresql.service", check=False)


def test_quadlet_unit_runs_on_debian13(sandbox: Sandbox, debian13_host: Host,
                                       sandbox_images: dict[str, dict[str, str]]) -> None:
    h = debian13_host.name
    image = sandbox_images["loki"]["default"]
    sandbox.run(h, "mkdir -p /etc/containers/systemd && cat > /etc/containers/systemd/sbx-loki.container",
                input_text=QUADLET.format(image=image))
    sandbox.run(h, f"podman pull -q {image} && systemctl daemon-reload && systemctl start sbx-loki.service",
                timeout=300)
    try:
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{debian13_host.ip}:3100/ready", timeout=2) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body.strip() == "ready"
        assert sandbox.run(h, "podman ps --format '{{.Names}}'").stdout.split() == ["sbx-loki"]
    finally:
        sandbox.run(h, "systemctl stop sbx-loki.service", check=False)


def test_s3_store_accepts_generated_credentials_only(sandbox_s3: S3Info) -> None:
    # a new bucket is a new SeaweedFS collection: its first write may meet a 500 while volumes grow, which
    # any real client retries ("standard" mode); the store itself is proven ready by s3store.start
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"mode": "standard", "max_attempts": 5})
    s3 = boto3.client("s3", endpoint_url=sandbox_s3.endpoint, aws_access_key_id=sandbox_s3.access_key,
                      aws_secret_access_key=sandbox_s3.secret_key, region_name=sandbox_s3.region, config=cfg)
    s3.create_bucket(Bucket="e2e-sandbox")
    s3.put_object(Bucket="e2e-sandbox", Key="k", Body=b"payload")
    assert s3.get_object(Bucket="e2e-sandbox", Key="k")["Body"].read() == b"payload"
    bad = boto3.client("s3", endpoint_url=sandbox_s3.endpoint, aws_access_key_id=sandbox_s3.access_key,
                       aws_secret_access_key="wrong-secret", region_name=sandbox_s3.region, config=cfg)
    with pytest.raises(ClientError):
        bad.list_objects_v2(Bucket="e2e-sandbox")


def test_timezone_change_in_a_host_does_not_move_the_machine_clock(sandbox: Sandbox,
                                                                  debian12_host: Host) -> None:
    before = time.time() - time.monotonic()
    sandbox.run(debian12_host.name, "timedatectl set-timezone America/Argentina/Cordoba", check=False)
    after = time.time() - time.monotonic()
    sandbox.run(debian12_host.name, "timedatectl set-timezone UTC", check=False)
    assert abs(after - before) < 5, f"machine clock moved by {after - before:.0f}s"


def _leftovers(name: str, index: int, pids: list[int]) -> list[str]:
    found: list[str] = []
    if state_dir(name).exists():
        found.append(f"state dir {state_dir(name)}")
    if Path("/run/netns").is_dir():
        found += [f"netns {p.name}" for p in Path("/run/netns").iterdir()
                  if p.name.startswith(f"osb-{name}-")]
    found += [f"link {p.name}" for p in Path("/sys/class/net").iterdir() if p.name.startswith(f"osb{index}")
              and (p.name == f"osb{index}" or p.name[len(f'osb{index}')] in "hs")]
    with open("/proc/self/mountinfo") as fh:
        found += [f"mount {ln.split()[4]}" for ln in fh if ln.split()[4].startswith(str(state_dir(name)))]
    found += [f"pid {p}" for p in pids if os.path.exists(f"/proc/{p}")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(state_dir(name)).encode() + b"/" in cmd:
                found.append(f"process {proc.name}: {cmd[:120]!r}")
    return found


def test_down_leaves_nothing_behind() -> None:
    name = "e2e-down"
    st = up(UpRequest(name=name, hosts=1, oses=("debian12",), registry=True, s3=True))
    sb = Sandbox(st)
    booted = sb.run("h1", "systemctl is-system-running --wait", check=False).stdout.strip()
    assert booted in ("running", "degraded")
    sb.run("h1", "podman images")  # podman storage in the bind-mounted directory
    pids = [h.supervisor.pid for h in st.hosts.values() if h.supervisor is not None]
    pids += [r.pid for r in (st.registry, st.s3) if r is not None]
    pids += [int(x) for h in st.hosts.values() if h.supervisor is not None
             for x in Path(f"/proc/{h.supervisor.pid}/task/{h.supervisor.pid}/children").read_text().split()]
    index = st.index
    assert _leftovers(name, index, []) != []  # the check sees a live sandbox
    assert down(name) is True
    assert _leftovers(name, index, pids) == []
    assert down(name) is False  # idempotent


def test_down_after_the_host_supervisor_was_killed() -> None:
    """A killed nspawn leaves the host's own processes running (podman cleanup among them); `down`
    must end them before it removes the state directory, or the removal races with their deletes."""
    name = "e2e-kill"
    st = up(UpRequest(name=name, hosts=1, oses=("debian12",), registry=False, s3=False))
    sb = Sandbox(st)
    sb.run("h1", "systemd-run --unit=osb-straggler sleep 600")
    sup = st.hosts["h1"].supervisor
    assert sup is not None
    kids = [int(x) for x in Path(f"/proc/{sup.pid}/task/{sup.pid}/children").read_text().split()]
    for pid in [sup.pid, *kids]:
        os.kill(pid, 9)
    time.sleep(0.5)
    index = st.index
    assert down(name) is True
    deadline = time.monotonic() + 10  # the killed nspawn itself is reaped by init, not by us
    while _leftovers(name, index, [sup.pid, *kids]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(name, index, [sup.pid, *kids]) == []
