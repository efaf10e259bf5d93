"""`install` on real sandbox hosts, the way an operator runs it (`./deploy.sh --action=install`).

Hosts (see conftest DEFAULT_HOSTS): h3 Debian 12 AIO (classic units), h4 Debian 13 AIO (Quadlet),
h5-h7 AIT (data, voice, app; also upgraded with the default pre-upgrade backup and rolled back with
its data), h8 + h9 cloud AIO (app on h8, a "managed" PostgreSQL requiring SSL on h9, the bucket on the
sandbox S3 store), h12-h14 the shipped cloud example in its own AIT shape (data with Redis, voice on
Debian 13, app) against the same managed PostgreSQL and another bucket. The OMniLeads application
images are the sandbox's stand-ins.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from cryptography import x509
from tests.certtools import expiring_server_cert
from tests.e2e import acme_server
from tests.e2e.commands import power_off_when_done
from tests.e2e.tenants import passwords, set_versions, tags, write_tenant

from omldeploy import dashboards
from omldeploy.catalog.releases import images
from omldeploy.inventory import Tenant, load_tenant
from omldeploy.ops import certs as certs_op
from omldeploy.ops import secrets as secrets_ops
from omldeploy.ops.converge import Reporter, converge
from omldeploy.render.build import render_tenant
from omldeploy.sandbox import Host, S3Info, Sandbox
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock
from omldeploy.state.secret_forms import encoded_forms

ROOT = Path(__file__).resolve().parents[2]
#: the sandbox hosts this module installs tenants on (h1/h2 are test_sandbox's, h10/h11 test_upgrade's)
MODULE_HOSTS = ("h3", "h4", "h5", "h6", "h7", "h8", "h9", "h12", "h13", "h14")
ACME_FQDN = "contact.aio12.test"  # the AIO tenant's fqdn, certified by the local ACME server


def cli(instances: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(instances), *args],
                          capture_output=True, text=True, env=env, timeout=900)


def deploy_sh(instances: Path, action: str, tenant: str) -> subprocess.CompletedProcess[str]:
    """The seed's entry point, run from a copy of the tool whose instances/ is our folder."""
    tool = instances.parent / "tool"
    tool.mkdir(exist_ok=True)
    (tool / "deploy.sh").write_text((ROOT / "deploy.sh").read_text())
    link = tool / "instances"
    if not link.exists():
        link.symlink_to(instances)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(["bash", str(tool / "deploy.sh"), f"--action={action}", f"--tenant={tenant}"],
                          capture_output=True, text=True, env=env, timeout=900)


def last_record(tenant: Tenant) -> ledger.Record:
    return ledger.read(tenant.folder)[-1]


def health(ip: str, port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{ip}:{port}/health", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def https_with_tenant_ca(tenant: Tenant, ip: str) -> str:
    """TLS handshake with nginx verified against the tenant's own CA (and the IP in the certificate)."""
    ctx = ssl.create_default_context(cafile=str(tenant.folder / ".omldeploy/pki/ca.pem"))
    with socket.create_connection((ip, 443), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=ip) as tls:
        cert = tls.getpeercert()
        assert cert is not None
        return str(dict(x[0] for x in cert["issuer"])["commonName"])


def assert_no_secret(tenant: Tenant, *texts: str) -> None:
    logs = "".join(p.read_text() for p in (tenant.folder / ".omldeploy/logs").glob("*.log"))
    record = ledger.ledger_path(tenant.folder)
    kept = record.read_text() if record.exists() else ""
    for secret in passwords(tenant):
        for form in encoded_forms(secret):  # raw, URL-encoded, JSON/shell-escaped, base64
            for text in (*texts, logs, kept):
                assert form not in text


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-install") / "instances"


@pytest.fixture(scope="module", autouse=True)
def _hosts_off_at_the_end(sandbox: Sandbox) -> Iterator[None]:
    """This module's hosts go dark once it is over (test_sandbox, which looks at every host, runs first)."""
    yield
    power_off_when_done(sandbox, MODULE_HOSTS)


def hosts(sandbox: Sandbox, *names: str) -> list[Host]:
    return [sandbox.host(n) for n in names]


# --------------------------------------------------------------------------- AIO, Debian 12, classic


@pytest.fixture(scope="module")
def aio12(sandbox: Sandbox, instances: Path) -> Tenant:
    h = sandbox.host("h3")
    assert h.os == "debian12"
    # fqdn: the name test_aio_switches_to_acme_certificates_* has certified (set from the start, so that
    # switching to ACME later restarts nginx only)
    tenant = write_tenant(instances, "aio12", "aio", sandbox, [h], extra={"fqdn": ACME_FQDN})
    proc = deploy_sh(instances, "install", "aio12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_secret(tenant, proc.stdout, proc.stderr)
    return tenant


def test_aio_debian12_installs_with_classic_units(aio12: Tenant, sandbox: Sandbox, instances: Path) -> None:
    ip = sandbox.host("h3").ip
    rec = last_record(aio12)
    assert rec.outcome == "ok" and rec.changed > 0 and len(rec.restarted) == 17
    units = sandbox.run("h3", "ls /etc/systemd/system/*.service; ls /etc/containers/systemd 2>/dev/null | wc -l").stdout
    assert "/etc/systemd/system/nginx.service" in units and units.strip().endswith("0")
    status = cli(instances, "status", "--tenant", "aio12", "--json")
    data = json.loads(status.stdout)
    assert status.returncode == 0 and data["healthy"], status.stdout
    units_state = {u["unit"]: u for u in data["hosts"]["omnileads_aio"]["units"]}
    assert all(u["state"] == "active" for u in units_state.values())
    assert units_state["postgresql"]["image"].endswith("/omnileads/postgres:230204.01")
    assert https_with_tenant_ca(aio12, ip) == "omldeploy aio12 CA"
    assert {c["certificate"] for c in data["certificates"]} == {"tenant CA", "server"}  # expiry in status
    app = health(ip, 8099)
    assert app["ok"] and all(app["reached"][k]["ok"] for k in ("postgres", "redis", "s3"))
    assert aio12.settings.text("bucket_access_key") in app["reached"]["s3"]["detail"]  # the app's own key
    env_mode = sandbox.run("h3", "stat -c %a /etc/default/django.env /etc/omnileads/certs/key.pem").stdout.split()
    assert env_mode == ["600", "600"]
    assert_time_accounted(instances, "aio12", {"omnileads_aio"}, 17)


def assert_time_accounted(instances: Path, name: str, hosts: set[str], units: int) -> None:
    """Issue 14, item 1: the first install's record says where its time went, per host and step:
    image pulls with their bytes (the hosts start cold), each unit's start and health wait, and the
    cost of reaching the host; the module's rows never exceed the step's wall time."""
    out = cli(instances, "history", "--tenant", name, "--action", "install", "--json")
    run = json.loads(out.stdout)["runs"][0]
    steps = run["timings"]["steps"]
    # no `calls` step: nothing on the voice path ran before, so the stage found no call to wait for
    assert {s["host"] for s in steps} == hosts
    # several tiers: one crash-loop settle per host at the end of the run, none inside the activates
    tiers = len(hosts) > 1
    assert {s["step"].split("-")[0] for s in steps} == {"stage", "activate"} | ({"settle"} if tiers else set())
    rows = [r | {"step": s["step"]} for s in steps for r in s["rows"]]
    settles = [r for r in rows if r["phase"] == "settle"]
    assert len(settles) == len(hosts) and all(r["step"] == ("settle" if tiers else "activate-0") for r in settles)
    pulls = [r for r in rows if r["phase"] == "pull"]
    assert pulls and all(r["bytes"] > 0 and r["seconds"] > 0 for r in pulls), pulls
    assert len([r for r in rows if r["phase"] == "health"]) == units
    assert len([r for r in rows if r["phase"] == "start"]) == units
    assert all(len([r for r in s["rows"] if r["phase"] == "ssh+ansible"]) == 1 for s in steps)
    for s in steps:
        assert sum(r["seconds"] for r in s["rows"]) <= s["wall"] + 0.01, s
    shown = cli(instances, "history", "--tenant", name, "--action", "install", "--last", "1")
    print("\n" + shown.stdout)
    assert shown.returncode == 0 and "pull" in shown.stdout and "health" in shown.stdout


def test_aio_second_run_changes_nothing(aio12: Tenant, instances: Path) -> None:
    proc = deploy_sh(instances, "install", "aio12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = last_record(aio12)
    assert rec.outcome == "ok" and rec.changed == 0 and rec.restarted == []
    assert "nothing changed, nothing restarted" in proc.stdout
    assert_no_secret(aio12, proc.stdout, proc.stderr)


def test_oml_manage_reaches_the_app(aio12: Tenant, sandbox: Sandbox) -> None:
    sandbox.run("h3", "oml_manage --reset_pass")
    commands = health(sandbox.host("h3").ip, 8099)["manage_commands"]
    assert any("cambiar_admin_password" in json.dumps(c) for c in commands)
    assert sandbox.run("h3", "oml_manage --help").returncode == 0


def test_check_shows_masked_diff_and_changes_nothing(aio12: Tenant, sandbox: Sandbox, instances: Path) -> None:
    before = sandbox.run("h3", "sha256sum /etc/default/django.env /etc/default/kamailio.env").stdout
    inv = aio12.folder / "inventory.yml"
    original = inv.read_text()
    new_pw = "checkmode-" + os.urandom(6).hex()
    # a PostgreSQL password that reaches the exporter's DSN only URL-encoded (issue 12 M3/M9)
    new_pg = f"chk pw%/{os.urandom(6).hex()}"
    inv.write_text(original.replace(aio12.settings.text("ami_password"), new_pw).replace("shm_size: 64",
                                                                                          "shm_size: 96")
                   .replace(aio12.settings.text("postgres_password"), json.dumps(new_pg)))
    try:
        proc = cli(instances, "install", "--tenant", "aio12", "--check")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert "AMI_PASSWORD=*** (value changed)" in out and "+SHM_SIZE=96" in out
        assert "DATA_SOURCE_NAME=*** (value changed)" in out
        logs = "".join(p.read_text() for p in (aio12.folder / ".omldeploy/logs").glob("*.log"))
        assert not any(form in out + proc.stderr + logs for form in encoded_forms(new_pg))
        assert "would (re)start" in out and "kamailio" in out
        assert new_pw not in out + proc.stderr and aio12.settings.text("ami_password") not in out
        assert sandbox.run("h3", "sha256sum /etc/default/django.env /etc/default/kamailio.env").stdout == before
        assert last_record(aio12).outcome == "check"
    finally:
        inv.write_text(original)


def test_a_second_operation_on_a_busy_tenant_is_refused(aio12: Tenant, instances: Path) -> None:
    with tenant_lock(aio12.folder, "aio12", "backup"):
        proc = cli(instances, "install", "--tenant", "aio12")
    assert proc.returncode == 4
    assert "busy" in proc.stderr and "'backup'" in proc.stderr and "pid" in proc.stderr


def test_a_second_tenant_on_an_installed_host_is_refused(aio12: Tenant, sandbox: Sandbox, instances: Path) -> None:
    """Issue 12, H2: a second tenant pointed at aio12's host by mistake is refused by the controller
    (same address under instances/); with `overlapping_addresses_ok` in both tenants, by the host's
    owner marker. Either way aio12's files and units stay exactly as they were."""
    probe = ("cat /etc/omnileads/omldeploy-owner; sha256sum /etc/default/*.env /etc/systemd/system/*.service "
             "/etc/omnileads/certs/*; systemctl show -p ActiveEnterTimestampMonotonic nginx postgresql asterisk")
    before = sandbox.run("h3", probe).stdout
    assert before.startswith("aio12\n")
    ip = sandbox.host("h3").ip
    intruder = write_tenant(instances, "intruder", "aio", sandbox, [sandbox.host("h3")])
    original = aio12.inventory_path.read_text()
    try:
        proc = cli(instances, "install", "--tenant", "intruder")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"tenant 'intruder' and tenant 'aio12' (host omnileads_aio) both use ansible_host {ip}" in proc.stderr
        assert "overlapping_addresses_ok: true" in proc.stderr and "Traceback" not in proc.stderr
        for inv in (aio12.inventory_path, intruder.inventory_path):
            inv.write_text(re.sub(r"^(\s*)vars:\s*$", r"\g<0>\n\g<1>  overlapping_addresses_ok: true",
                                  inv.read_text(), count=1, flags=re.M))
        proc = cli(instances, "install", "--tenant", "intruder")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        out = proc.stdout + proc.stderr
        assert "this host belongs to tenant 'aio12'" in out and "not to 'intruder'" in out, out
        assert "nothing was changed" in out
        # issue 12, low: an unreachable host's real reason shows, though the stage step runs with no_log
        inv = intruder.inventory_path
        inv.write_text(re.sub(r"^(\s*)ansible_host: .*$", r"\g<0>\n\g<1>ansible_port: 9", inv.read_text(), count=1,
                              flags=re.M))
        proc = cli(instances, "install", "--tenant", "intruder")
        assert proc.returncode == 1 and "Connection refused" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    finally:
        aio12.inventory_path.write_text(original)
        shutil.rmtree(intruder.folder)
    assert sandbox.run("h3", probe).stdout == before


def served_pem(tenant: Tenant, ip: str) -> str:
    """The PEM nginx serves on 443 (verified against the tenant CA and the IP in the certificate)."""
    ctx = ssl.create_default_context(cafile=str(tenant.folder / ".omldeploy/pki/ca.pem"))
    with socket.create_connection((ip, 443), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=ip) as tls:
        served = tls.getpeercert(binary_form=True)
    assert served is not None
    return ssl.DER_cert_to_PEM_cert(served).strip()


def test_fastagi_and_ami_follow_the_inventory(aio12: Tenant, sandbox: Sandbox, instances: Path) -> None:
    """fastagi and ami (astami) deploy when the inventory names their tags (as releases from 1.29/1.31
    do), reach what they need, and go away cleanly when the keys go (a downgrade to a release without
    them): their units stopped and removed, and the app no longer told where FastAGI is."""
    h = sandbox.host("h3")
    catalog = images()
    set_versions(aio12, {"fastagi_version": catalog["fastagi"].default, "astami_version": catalog["astami"].default})
    # the same install also renews a server certificate near expiry (issue 12 M4; one install for both
    # checks keeps CI short): the tenant CA issues one ending in 10 days, no clock is moved
    expiring_server_cert(aio12.folder, 10)
    assert [c.days_left for c in certs_op.describe(aio12) if c.role == "server"] == [9]
    proc = cli(instances, "install", "--tenant", "aio12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = last_record(aio12)
    assert {"omnileads_aio:fastagi", "omnileads_aio:ami"} <= set(rec.restarted)
    assert "renewed from the tenant CA" in proc.stdout
    assert {"omnileads_aio:nginx", "omnileads_aio:kamailio"} <= set(rec.restarted)
    renewed = (aio12.folder / ".omldeploy/pki/server.pem").read_text().strip()
    assert served_pem(aio12, h.ip) == renewed
    assert [c.days_left >= 824 for c in certs_op.describe(aio12) if c.role == "server"] == [True]
    agi = health(h.ip, 8094)
    assert agi["ok"] and agi["image"].endswith(f"fastagi:{catalog['fastagi'].default}"), agi
    ami = health(h.ip, 8093)
    assert ami["ok"] and ami["ami_session"]["connected"], ami
    assert f"FASTAGI={h.ip}" in sandbox.run("h3", "cat /etc/default/django.env /etc/default/asterisk.env").stdout
    assert cli(instances, "status", "--tenant", "aio12").returncode == 0

    inv = aio12.inventory_path
    inv.write_text("".join(line for line in inv.read_text().splitlines(keepends=True)
                           if not line.lstrip().startswith(("fastagi_version:", "astami_version:"))))
    proc = cli(instances, "install", "--tenant", "aio12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gone = sandbox.run("h3", "ls /etc/systemd/system; podman ps -a --format '{{.Names}}'").stdout
    assert "fastagi" not in gone and "ami.service" not in gone and "oml-ami-server" not in gone, gone
    assert "FASTAGI=" not in sandbox.run("h3", "cat /etc/default/django.env").stdout
    assert cli(instances, "status", "--tenant", "aio12").returncode == 0
    again = cli(instances, "install", "--tenant", "aio12")
    assert again.returncode == 0 and last_record(aio12).restarted == []


def test_certs_renew_restarts_only_what_serves_tls(aio12: Tenant, sandbox: Sandbox, instances: Path) -> None:
    """`omldeploy certs renew` re-issues the server certificate now, pushes it and restarts only nginx and
    Kamailio (issue 12 M4), and the new expiry is what `certs status` reports."""
    before = (aio12.folder / ".omldeploy/pki/server.pem").read_text().strip()
    proc = cli(instances, "certs", "renew", "--tenant", "aio12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = last_record(aio12)
    assert rec.action == "certs" and sorted(rec.restarted) == ["omnileads_aio:kamailio", "omnileads_aio:nginx"]
    renewed = (aio12.folder / ".omldeploy/pki/server.pem").read_text().strip()
    assert renewed != before and served_pem(aio12, sandbox.host("h3").ip) == renewed
    server = {c.role: c for c in certs_op.describe(aio12)}["server"]  # what `certs status` shows
    assert server.days_left >= 824 and server.issuer == "tenant CA" and not server.due


def _open_ports(sandbox: Sandbox, source: str, ip: str, ports: tuple[int, ...]) -> set[int]:
    """The ports of ip that `source` (a sandbox host) completes a TCP connection to, probed in parallel
    over one SSH session (a SYN the firewall drops times out after 2 s)."""
    probes = " ".join(f"(nc -z -w 2 {ip} {p} && echo {p}) &" for p in ports)
    out = sandbox.run(source, f"{probes} wait", check=False).stdout
    return {int(x) for x in out.split()}


def _controller_reaches(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def test_firewall_per_role_closes_lan_ports_and_rolls_back_unconfirmed(aio12: Tenant, sandbox: Sandbox,
                                                                        instances: Path) -> None:
    """`firewall: nftables` on the installed AIO (issue 12): from a host that is not the tenant's, LAN
    ports (uwsgi 8099, MinIO 9000) are closed while HTTPS stays open; node-exporter answers the host in
    `monitoring_sources` only; SSH from the controller keeps working (the confirmation came over a new
    connection). The same ruleset again is no change. Then a changed ruleset that is never confirmed
    is undone by the host's systemd timer, back to the confirmed table. Cleaned up afterwards
    (`firewall: none` leaves a table as it is, so the test deletes it)."""
    from omldeploy.apply.engine import run_steps
    from omldeploy.ops.firewall import apply_step, converge_firewall

    ip = sandbox.host("h3").ip
    watcher, stranger = "h4", "h5"
    probe = (443, 8099, 9000, 9100)
    assert _open_ports(sandbox, stranger, ip, probe) == set(probe)  # all open before
    inv = aio12.inventory_path
    original = inv.read_text()
    inv.write_text(original.replace("  vars:\n", "  vars:\n    firewall: nftables\n"
                                    f"    monitoring_sources: [{sandbox.host(watcher).ip}]\n"
                                    "    sip_allowed_sources: [203.0.113.7]\n"
                                    "    firewall_rollback_seconds: 30\n", 1))
    try:
        proc = cli(instances, "install", "--tenant", "aio12")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "firewall confirmed over a new SSH connection" in proc.stdout, proc.stdout
        assert _open_ports(sandbox, stranger, ip, probe) == {443}
        assert _open_ports(sandbox, watcher, ip, probe) == {443, 9100}
        assert not _controller_reaches(ip, 8099) and https_with_tenant_ca(aio12, ip) == "omldeploy aio12 CA"
        assert sandbox.run("h3", "systemctl is-enabled omldeploy-firewall.service").stdout.strip() == "enabled"
        tenant = load_tenant(aio12.folder, "aio12")
        same = converge_firewall(tenant, render_tenant(tenant))
        assert same is not None and same.ok
        assert same.hosts["omnileads_aio"].reports["firewall"] == {"changed": False, "summary": "firewall unchanged"}

        # the rollback path: a changed ruleset, never confirmed, undone by the host itself
        confirmed = sandbox.run("h3", "nft list table inet omldeploy").stdout
        bundle = render_tenant(tenant)
        hb = bundle.hosts[0]
        assert hb.firewall is not None
        hb.firewall = hb.firewall.replace("tcp dport 443 accept", "tcp dport 443 drop")
        step = apply_step(tenant, bundle, seconds=5)
        assert step is not None
        loaded = run_steps(tenant, [step])
        assert loaded.ok and loaded.hosts["omnileads_aio"].reports["firewall"]["launcher"] == "systemd"
        assert "tcp dport 443 drop" in sandbox.run("h3", "nft list table inet omldeploy").stdout  # loaded ...
        end = time.monotonic() + 30
        while sandbox.run("h3", "nft list table inet omldeploy").stdout != confirmed:  # ... and undone
            assert time.monotonic() < end, "the unconfirmed ruleset was not rolled back"
            time.sleep(0.5)
        assert _open_ports(sandbox, stranger, ip, probe) == {443}
    finally:
        inv.write_text(original)
        sandbox.run("h3", "nft delete table inet omldeploy; systemctl disable omldeploy-firewall.service; "
                    "rm -rf /etc/omnileads/firewall /var/lib/omldeploy/firewall", check=False)


def _say_in_container(sandbox: Sandbox, host: str, container: str, text: str) -> None:
    """Print `text` on the container's own stdout (PID 1's), which Podman sends to the unit's journal."""
    inner = f"echo {shlex.quote(text)} > /proc/1/fd/1"
    proc = sandbox.run(host, f"podman exec {container} sh -c {shlex.quote(inner)}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_logs_show_container_lines_by_host_and_component_with_secrets_masked(aio12: Tenant, sandbox: Sandbox,
                                                                           instances: Path) -> None:
    """Issue 13: `omldeploy logs` reads the journal over SSH, without Loki; a password a container prints
    reaches the operator masked; --follow prints a new line as it is written and ends on ^C with 0."""
    marker = "oml-logs-" + os.urandom(4).hex()
    secret = aio12.settings.text("postgres_password")
    nginx = next(u.container for u in render_tenant(aio12).hosts[0].units if u.name == "nginx")
    _say_in_container(sandbox, "h3", nginx, f"{marker} dsn=postgres://omnileads:{secret}@db")
    args = ("logs", "--tenant", "aio12", "--component", "nginx", "--since", "10m", "--grep", marker)
    deadline = time.monotonic() + 20
    while True:  # journald writes asynchronously: bounded wait for the line to be readable
        proc = cli(instances, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if marker in proc.stdout or time.monotonic() > deadline:
            break
    assert re.search(rf"^omnileads_aio\s+nginx\s+\| {marker} dsn=postgres://omnileads:\*\*\*@db$", proc.stdout,
                     re.M), proc.stdout
    assert secret not in proc.stdout + proc.stderr
    as_json = [json.loads(x) for x in cli(instances, *args, "--json").stdout.splitlines()]
    assert as_json and {x["host"] for x in as_json} == {"omnileads_aio"} and as_json[0]["component"] == "nginx"

    follow = subprocess.Popen([sys.executable, "-m", "omldeploy", "--instances", str(instances), "logs", "--tenant",
                               "aio12", "--follow", "--lines", "0", "--component", "nginx"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert follow.stdout is not None
        later = marker + "-followed"
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(follow.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not any(later in x for x in lines) and time.monotonic() < deadline:
            _say_in_container(sandbox, "h3", nginx, later)  # again until seen: the follow may still connect
            reader.join(timeout=1)
        assert any(re.match(rf"omnileads_aio\s+nginx\s+\| {later}$", x) for x in lines), lines
    finally:
        follow.send_signal(signal.SIGINT)
        code = follow.wait(timeout=15)
    assert code == 0, follow.stderr.read() if follow.stderr else ""


def _prometheus(ip: str, path: str) -> Any:
    with urllib.request.urlopen(f"http://{ip}:9090{path}", timeout=10) as resp:
        return json.loads(resp.read())["data"]


def test_prometheus_scrapes_every_target_with_labels_and_dashboards_name_real_metrics(aio12: Tenant,
                                                                                      sandbox: Sandbox,
                                                                                      instances: Path) -> None:
    """Issue 13: the tenant's (real) Prometheus, running as nobody like prom/prometheus, reaches every
    target, each labelled tenant/host/role/component, and `omldeploy status` says so from its API;
    every metric a shipped dashboard names is one it has scraped from the (real) exporters; the node
    exporter's systemd collector sees the tenant's units."""
    ip = sandbox.host("h3").ip
    deadline = time.monotonic() + 90
    while True:  # the first scrapes follow the install by up to one scrape interval (10 s)
        targets = _prometheus(ip, "/api/v1/targets")["activeTargets"]
        down = [(t["labels"].get("component"), t["lastError"]) for t in targets if t["health"] != "up"]
        if targets and not down:
            break
        assert time.monotonic() < deadline, down
        threading.Event().wait(2)
    assert {t["labels"]["component"] for t in targets} == {"prometheus", "host", "postgres", "redis", "asterisk"}
    assert "nobody" in sandbox.run("h3", "podman exec prometheus-server id -un").stdout
    proc = cli(instances, "status", "--tenant", "aio12", "--json")
    prom = json.loads(proc.stdout)["hosts"]["omnileads_aio"]["prometheus"]
    assert prom["up"] >= len(targets) - 1 and not prom["down"], prom  # a new scrape may be due
    shown = cli(instances, "status", "--tenant", "aio12").stdout
    assert re.search(r"prometheus at [0-9.]+:9090: \d+ of \d+ targets up", shown), shown
    for t in targets:
        assert {k: t["labels"][k] for k in ("tenant", "host", "role")} == {
            "tenant": "aio12", "host": "omnileads_aio", "role": "aio"}, t["labels"]
    wanted = {n for q in dashboards.queries() if q.kind == "prometheus" for n in dashboards.metric_names(q.expr)}
    while True:  # every exporter has been scraped at least once now; its series appear with that scrape
        scraped = set(_prometheus(ip, "/api/v1/label/__name__/values"))
        if wanted <= scraped or time.monotonic() > deadline:
            break
        threading.Event().wait(2)
    assert wanted <= scraped, f"named by a dashboard, never scraped: {sorted(wanted - scraped)}"
    query = urllib.parse.quote('node_systemd_unit_state{state="active"} == 1')
    active = {r["metric"]["name"] for r in _prometheus(ip, f"/api/v1/query?query={query}")["result"]}
    assert {f"{u.name}.service" for u in render_tenant(aio12).hosts[0].units} == active


def served_certificate(ip: str, name: str) -> x509.Certificate:
    """The certificate nginx presents for `name` (SNI), unverified: the caller checks who issued it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((ip, 443), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_aio_switches_to_acme_certificates_then_renews_with_a_reload(aio12: Tenant, sandbox: Sandbox,
                                                                      instances: Path) -> None:
    """certs: acme against a local ACME server (pebble on the sandbox bridge, its DNS resolving the fqdn
    to the host): install issues through HTTP-01 served by nginx on port 80, and nginx serves the
    certificate pebble signed. The renewal timer is armed; its service, forced to renew now
    (OML_ACME_DAYS beyond the certificate's life: no clock moves), installs a new certificate and
    reloads nginx without restarting it. With the ACME server gone, renewal fails visibly and nginx keeps
    serving the valid certificate."""
    h = sandbox.host("h3")
    fqdn = ACME_FQDN
    # pebble's CA is new at every start: lego must not find a certificate of an earlier session's pebble
    # (a sandbox kept with OMLDEPLOY_E2E_KEEP=1)
    sandbox.run("h3", "rm -rf /etc/omnileads/acme")
    server = acme_server.start(sandbox.registry.split(":")[0], h.ip)
    try:
        (aio12.folder / "acme_server_ca.pem").write_bytes(server.ca_pem)
        inv = aio12.inventory_path
        inv.write_text(re.sub(r"^(\s+)certs: selfsigned\s*$", r"\g<1>certs: acme\n"
                              rf"\g<1>acme_email: ops@aio12.test\n\g<1>acme_directory: {server.directory}",
                              inv.read_text(), count=1, flags=re.M))
        proc = cli(instances, "install", "--tenant", "aio12")
        assert proc.returncode == 0, proc.stdout + proc.stderr + server.logs()
        assert last_record(aio12).restarted == ["omnileads_aio:nginx"]  # Kamailio keeps its files
        issued = served_certificate(h.ip, fqdn)
        issued.verify_directly_issued_by(server.intermediate())
        sans = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [fqdn]
        assert sandbox.run("h3", "systemctl is-active oml-acme-renew.timer").stdout.strip() == "active"

        def nginx_process() -> str:
            return sandbox.run("h3", "podman inspect oml-nginx-server --format '{{.Id}} {{.State.Pid}}'").stdout

        before = nginx_process()
        sandbox.run("h3", "echo OML_ACME_DAYS=100000 > /etc/omnileads/acme/renew.env && "
                          "systemctl start oml-acme-renew.service", timeout=180)
        renewed = served_certificate(h.ip, fqdn)
        assert renewed.serial_number != issued.serial_number
        renewed.verify_directly_issued_by(server.intermediate())
        assert nginx_process() == before  # reloaded, not restarted
        assert "nginx reloaded" in sandbox.run("h3", "journalctl -u oml-acme-renew.service --no-pager").stdout

        server.stop()
        failed = sandbox.run("h3", "systemctl start oml-acme-renew.service", check=False, timeout=180)
        assert failed.returncode != 0
        assert sandbox.run("h3", "systemctl is-failed oml-acme-renew.service", check=False).stdout.strip() == "failed"
        assert served_certificate(h.ip, fqdn).serial_number == renewed.serial_number
    finally:
        server.stop()


def pg_login(sandbox: Sandbox, tenant: Tenant, password: str) -> bool:
    """Whether PostgreSQL on h3 accepts `password` for the app's role over TCP (SCRAM)."""
    proc = sandbox.run("h3", f"PGPASSWORD={shlex.quote(password)} podman exec -e PGPASSWORD oml-postgresql-server "
                             f"psql -h 127.0.0.1 -U {tenant.settings.text('postgres_user')} "
                             f"-d {tenant.settings.text('postgres_database')} -tAc 'SELECT 1'", check=False)
    return proc.returncode == 0


def test_secrets_init_then_rotate_postgres(aio12: Tenant, sandbox: Sandbox, instances: Path) -> None:
    """Issue 12: the passwords move into an encrypted vault.yml (same render), then the PostgreSQL
    password is rotated on the running tenant: the app stays healthy, the new secret works, the old one
    is refused, and no secret is printed or kept in the ledger."""
    ip = sandbox.host("h3").ip
    pw = instances.parent / "vault-pass"
    pw.write_text("e2e-vault-" + os.urandom(8).hex() + "\n")
    old_pg, old_ami = aio12.settings.text("postgres_password"), aio12.settings.text("ami_password")
    init = cli(instances, "--vault-password-file", str(pw), "secrets", "init", "--tenant", "aio12")
    assert init.returncode == 0, init.stdout + init.stderr
    assert "byte-identical" in init.stdout and old_pg not in aio12.inventory_path.read_text()
    refused = cli(instances, "validate", "--tenant", "aio12")  # encrypted, and no password given
    assert refused.returncode == 2 and "vault.yml" in refused.stderr and "no vault password" in refused.stderr
    wrong = instances.parent / "wrong-pass"
    wrong.write_text("not-the-password\n")
    bad = cli(instances, "--vault-password-file", str(wrong), "secrets", "rotate", "--tenant", "aio12",
              "--what", "postgres")
    assert bad.returncode == 2 and "password is wrong" in bad.stderr and pg_login(sandbox, aio12, old_pg)

    os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = str(pw)
    try:
        rot = cli(instances, "secrets", "rotate", "--tenant", "aio12", "--what", "postgres")
        assert rot.returncode == 0, rot.stdout + rot.stderr
        fresh = load_tenant(aio12.folder, "aio12")
        new_pg = fresh.settings.text("postgres_password")
        assert new_pg != old_pg and pg_login(sandbox, fresh, new_pg) and not pg_login(sandbox, fresh, old_pg)
        assert "omnileads_aio: restarts postgresql" in rot.stdout and "the old one refused" in rot.stdout
        app = health(ip, 8099)
        assert app["ok"] and app["reached"]["postgres"]["ok"], app
        rec = last_record(fresh)
        assert rec.action == "secrets rotate" and rec.outcome == "ok" and rec.extra["what"] == "postgres"

        # the AMI side of `rotate --what ami` (its apply is the one above): the host module's login proves
        # which secret Asterisk accepts (the full AMI rotation would double this test's time)
        seen = secrets_ops._call(fresh, fresh.host("omnileads_aio"), "ami_login", old_ami,
                                 old_password="not-" + old_ami, user=fresh.settings.text("ami_user"),
                                 address=ip, port=5038)
        assert seen == {"accepted": True, "old_accepted": False}
    finally:
        os.environ.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    texts = [init.stdout, init.stderr, bad.stdout, bad.stderr, rot.stdout, rot.stderr]
    assert_no_secret(aio12, *texts)  # the old passwords
    assert_no_secret(fresh, *texts)  # the new ones
    assert not (aio12.folder / ".omldeploy/rotation.yml").exists()


# --------------------------------------------------------------------------- AIO, Debian 13, Quadlet


def test_aio_debian13_installs_with_quadlet(sandbox: Sandbox, instances: Path) -> None:
    h = sandbox.host("h4")
    assert h.os == "debian13"
    tenant = write_tenant(instances, "aio13", "aio", sandbox, [h])
    proc = cli(instances, "install", "--tenant", "aio13")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quadlet units, podman 5." in proc.stdout
    listing = sandbox.run("h4", "ls /etc/containers/systemd; ls /etc/systemd/system | grep -c '^nginx.service' || true")
    assert "nginx.container" in listing.stdout and listing.stdout.strip().endswith("0")
    assert sandbox.run("h4", "systemctl is-active nginx.service postgresql.service omnileads.service").returncode == 0
    assert https_with_tenant_ca(tenant, h.ip) == "omldeploy aio13 CA"
    again = cli(instances, "install", "--tenant", "aio13")
    assert again.returncode == 0 and last_record(tenant).changed == 0 and last_record(tenant).restarted == []


# --------------------------------------------------------------------------- AIT


@pytest.fixture(scope="module")
def ait(sandbox: Sandbox, instances: Path) -> Tenant:
    tenant = write_tenant(instances, "ait", "ait", sandbox, hosts(sandbox, "h5", "h6", "h7"))
    proc = cli(instances, "install", "--tenant", "ait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_secret(tenant, proc.stdout, proc.stderr)
    return tenant


def test_ait_installs_across_three_hosts(ait: Tenant, sandbox: Sandbox, instances: Path) -> None:
    data, voice, app = hosts(sandbox, "h5", "h6", "h7")
    status = cli(instances, "status", "--tenant", "ait", "--json")
    assert status.returncode == 0, status.stdout
    uwsgi = health(app.ip, 8099)
    assert data.ip in uwsgi["reached"]["postgres"]["detail"] and data.ip in uwsgi["reached"]["s3"]["detail"]
    assert health(voice.ip, 7088)["ok"]
    assert "postgresql" not in sandbox.run("h7", "ls /etc/systemd/system").stdout
    assert https_with_tenant_ca(ait, app.ip) == "omldeploy ait CA"
    assert_time_accounted(instances, "ait", {"omnileads_data", "omnileads_voice", "omnileads_app"}, 21)


def test_ait_changing_one_setting_restarts_only_what_uses_it(ait: Tenant, instances: Path) -> None:
    inv = ait.folder / "inventory.yml"
    inv.write_text(inv.read_text().replace("shm_size: 64", "shm_size: 128"))
    proc = cli(instances, "install", "--tenant", "ait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = last_record(ait)
    # kamailio reads SHM_SIZE; nginx in front of it (WSS) opens a new connection per client, so it keeps
    # running (Component.follows_restarts)
    assert sorted(rec.restarted) == ["omnileads_app:kamailio"]


def test_ait_per_component_actions_and_status(ait: Tenant, sandbox: Sandbox, instances: Path) -> None:
    sandbox.run("h7", "systemctl stop nginx")
    status = cli(instances, "status", "--tenant", "ait")
    assert status.returncode == 1 and "NOT healthy" in status.stdout and "nginx" in status.stdout
    for action, stop, expected in (("nginx", None, ["omnileads_app:nginx"]),
                                   ("redis", None, []),
                                   ("postgres", None, []),
                                   ("voice", ("h6", "asterisk"), ["omnileads_voice:asterisk"]),
                                   ("app", None, [])):
        if stop:
            sandbox.run(stop[0], f"systemctl stop {stop[1]}")
        proc = deploy_sh(instances, action, "ait")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rec = last_record(ait)
        assert rec.action == action and rec.restarted == expected, (action, rec.restarted)
    assert last_record(ait).hosts == ["omnileads_app"]
    assert cli(instances, "status", "--tenant", "ait").returncode == 0


def _link(sandbox: Sandbox, host: str, up: bool) -> None:
    veth = sandbox.state.net.host_veth(sandbox.host(host).number)
    subprocess.run(["ip", "link", "set", veth, "up" if up else "down"], check=True)


def test_ait_lost_host_mid_install_fails_cleanly_then_converges(ait: Tenant, sandbox: Sandbox) -> None:
    """The app host drops off the network once the data host is activated; the run must fail naming
    it, and a re-run after the link is back must finish the pending restart."""
    inv = ait.folder / "inventory.yml"
    inv.write_text(inv.read_text().replace("pkg_size: 8", "pkg_size: 16"))
    tenant = load_tenant(ait.folder, "ait")
    lines: list[str] = []
    cut = threading.Event()

    def progress_say(text: str) -> None:
        lines.append(text)
        if "omnileads_voice" in text and "activate" in text and not cut.is_set():
            _link(sandbox, "h7", up=False)
            cut.set()

    try:
        code = converge(tenant, "install", Reporter(say=progress_say, warn=lines.append))
    finally:
        _link(sandbox, "h7", up=True)
    out = "\n".join(lines)
    assert cut.is_set(), out
    assert code == 1
    assert "omnileads_app" in out and "unreachable" in out.lower() and "re-run" in out
    assert last_record(tenant).outcome == "failed"
    again: list[str] = []
    code = converge(tenant, "install", Reporter(say=again.append, warn=again.append))
    assert code == 0, "\n".join(again)
    assert "omnileads_app:kamailio" in last_record(tenant).restarted
    final: list[str] = []
    assert converge(tenant, "install", Reporter(say=final.append, warn=final.append)) == 0
    assert last_record(tenant).restarted == []


def ait_sql(sandbox: Sandbox, tenant: Tenant, sql: str) -> str:
    user, db = tenant.settings.text("postgres_user"), tenant.settings.text("postgres_database")
    return sandbox.run("h5", f"podman exec -i oml-postgresql-server psql -v ON_ERROR_STOP=1 -U {user} -d {db} -tA",
                       input_text=sql).stdout.strip()


def running(instances: Path, name: str) -> dict[str, str]:
    proc = cli(instances, "status", "--tenant", name, "--json")
    data = json.loads(proc.stdout)
    assert data["healthy"], proc.stdout
    return {u["unit"]: u["image"] for h in data["hosts"].values() for u in h["units"]}


def test_ait_upgrade_with_the_default_backup_then_rollback_with_data(ait: Tenant, sandbox: Sandbox,
                                                                     instances: Path) -> None:
    """An operator's upgrade of AIT (default -> alt, the pre-upgrade backup taken by default), a data
    change after it (as a schema migration would make), then `rollback --with-data`: the versions AND the
    data return to what they were before the upgrade."""
    a, b = tags("A"), tags("B")
    set_versions(ait, a)
    assert cli(instances, "install", "--tenant", "ait").returncode == 0
    ait_sql(sandbox, ait, "CREATE TABLE IF NOT EXISTS upg_probe (n int); TRUNCATE upg_probe; "
                          "INSERT INTO upg_probe SELECT g FROM generate_series(1, 3000) g;")
    before = ait_sql(sandbox, ait, "SELECT count(*), sum(n) FROM upg_probe")
    set_versions(ait, b)
    proc = cli(instances, "upgrade", "--tenant", "ait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "taking a pre-upgrade backup" in proc.stdout and "WITHOUT" not in proc.stdout + proc.stderr
    assert re.search(r"upgrade took \d+\.\d+s in all \(backup \d+\.\d+s, apply \d+\.\d+s\)", proc.stdout)
    rec = last_record(ait)
    assert rec.action == "upgrade" and rec.outcome == "ok" and rec.extra.get("backup")
    now = running(instances, "ait")
    assert now["omnileads"].endswith(f":{b['omnileads_version']}") and now["asterisk"].endswith(
        f":{b['asterisk_version']}")
    # the new version "migrates" the data
    ait_sql(sandbox, ait, "DELETE FROM upg_probe WHERE n > 1000; CREATE TABLE migrated_by_b (x int);")
    assert ait_sql(sandbox, ait, "SELECT count(*), sum(n) FROM upg_probe") != before

    back = cli(instances, "rollback", "--tenant", "ait", "--with-data")
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"restoring the pre-upgrade backup {rec.extra['backup']}" in back.stdout
    assert ait_sql(sandbox, ait, "SELECT count(*), sum(n) FROM upg_probe") == before
    assert ait_sql(sandbox, ait, "SELECT count(*) FROM pg_tables WHERE tablename = 'migrated_by_b'") == "0"
    now = running(instances, "ait")
    assert now["omnileads"].endswith(f":{a['omnileads_version']}") and now["asterisk"].endswith(
        f":{a['asterisk_version']}")
    assert f"omnileads_version: {a['omnileads_version']}" in ait.inventory_path.read_text()


# --------------------------------------------------------------------------- cloud


PG_UNIT = """[Unit]
Description=managed PostgreSQL stand-in (requires SSL)
[Service]
ExecStartPre=-/usr/bin/podman rm -f managed-pg
ExecStart=/usr/bin/podman run --rm --name managed-pg --network=host --env-file=/etc/default/managed-pg.env \
 -v managed_pg:/var/lib/postgresql/data {image} postgres -c listen_addresses=* -c port=25060
ExecStop=/usr/bin/podman stop -t 5 managed-pg
[Install]
WantedBy=multi-user.target
"""


@pytest.fixture(scope="module")
def managed_pg(sandbox: Sandbox) -> tuple[Host, str]:
    """A "managed" PostgreSQL requiring SSL on h9 (the provider's, shared by the cloud tenants), and
    its admin password."""
    db = sandbox.host("h9")
    admin_pw = "mgd-" + os.urandom(8).hex()
    sandbox.run("h9", "umask 077; cat > /etc/default/managed-pg.env", input_text=(
        f"POSTGRES_USER=doadmin\nPOSTGRES_PASSWORD={admin_pw}\nPOSTGRES_DB=defaultdb\nPOSTGRES_SSL=require\n"))
    sandbox.run("h9", "cat > /etc/systemd/system/managed-pg.service",
                input_text=PG_UNIT.format(image=sandbox.image_ref("postgres")))
    sandbox.run("h9", "systemctl stop managed-pg 2>/dev/null; podman volume rm -f managed_pg >/dev/null; "
                      "systemctl daemon-reload && systemctl start managed-pg && "
                      "for i in $(seq 120); do podman exec managed-pg pg_isready -q -p 25060 && exit 0; "
                      "sleep 0.5; done; exit 1", timeout=180)
    return db, admin_pw


def operator_bucket(s3info: S3Info, name: str) -> None:
    """The operator's bucket exists before install (the provider's console made it)."""
    s3 = boto3.client("s3", endpoint_url=s3info.endpoint, aws_access_key_id=s3info.access_key,
                      aws_secret_access_key=s3info.secret_key, region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                    retries={"mode": "standard", "max_attempts": 6}))
    if name not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=name)


def managed_dbs(sandbox: Sandbox) -> list[str]:
    return sandbox.run("h9", "podman exec managed-pg psql -U doadmin -d defaultdb -p 25060 -tAc "
                             "\"select datname from pg_database\"").stdout.split()


def test_cloud_with_managed_postgres_over_ssl_and_external_bucket(sandbox: Sandbox, sandbox_s3: S3Info,
                                                                   managed_pg: tuple[Host, str],
                                                                   instances: Path) -> None:
    db, admin_pw = managed_pg
    app = sandbox.host("h8")
    operator_bucket(sandbox_s3, "cloud-tenant")
    tenant = write_tenant(instances, "cloud", "aio", sandbox, [app], extra={
        "postgres_host": db.ip, "postgres_out": True, "postgres_ssl": True, "postgres_port": 25060,
        "postgres_user": "doadmin", "postgres_password": admin_pw, "postgres_maintenance_db": "defaultdb",
        "bucket_url": sandbox_s3.endpoint, "bucket_access_key": sandbox_s3.access_key,
        "bucket_secret_key": sandbox_s3.secret_key, "bucket_name": "cloud-tenant", "callrec_device": "s3",
    })
    assert tenant.layout.name == "cloud-aio"
    proc = cli(instances, "install", "--tenant", "cloud")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    units = sandbox.run("h8", "ls /etc/systemd/system").stdout
    assert "postgresql.service" not in units and "minio.service" not in units
    uwsgi = health(app.ip, 8099)
    assert "ssl true" in uwsgi["reached"]["postgres"]["detail"] and db.ip in uwsgi["reached"]["postgres"]["detail"]
    assert "cloud-tenant" in uwsgi["reached"]["s3"]["detail"]
    assert "omnileads" in managed_dbs(sandbox)  # created by omldeploy over SSL with the maintenance database
    assert_no_secret(tenant, proc.stdout, proc.stderr)


def test_the_shipped_cloud_example_in_its_ait_shape(sandbox: Sandbox, sandbox_s3: S3Info,
                                                    managed_pg: tuple[Host, str], instances: Path) -> None:
    """`inventory_cloud.yml` as shipped (data/voice/app, managed PostgreSQL over SSL, external bucket),
    with only what an operator changes: addresses, credentials, bucket, and its own database name on
    the provider's shared server."""
    db, admin_pw = managed_pg
    data, voice, app = hosts(sandbox, "h12", "h13", "h14")
    assert voice.os == "debian13"  # one tenant across both OS versions (classic units and Quadlet)
    operator_bucket(sandbox_s3, "cloud-ait")
    tenant = write_tenant(instances, "cloudait", "cloud", sandbox, [data, voice, app], extra={
        "postgres_host": db.ip, "postgres_password": admin_pw, "postgres_database": "omnileads_ait",
        "bucket_url": sandbox_s3.endpoint, "bucket_access_key": sandbox_s3.access_key,
        "bucket_secret_key": sandbox_s3.secret_key, "bucket_name": "cloud-ait", "bucket_region": "us-east-1",
    })
    assert tenant.layout.name == "cloud-ait"
    # a host whose journal is only on disk has no /run/log/journal: Promtail's mount source is created
    sandbox.run("h14", "rm -rf /run/log/journal")
    proc = cli(instances, "install", "--tenant", "cloudait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for h in ("h12", "h13", "h14"):
        listing = sandbox.run(h, "ls /etc/systemd/system /etc/containers/systemd 2>/dev/null; true").stdout
        assert "postgresql." not in listing and "minio." not in listing, (h, listing)
    assert sandbox.run("h12", "systemctl is-active redis.service").returncode == 0
    assert sandbox.run("h13", "systemctl is-active asterisk.service").returncode == 0
    assert sandbox.run("h14", "test -d /run/log/journal && systemctl is-active promtail.service").returncode == 0
    uwsgi = health(app.ip, 8099)
    pg = uwsgi["reached"]["postgres"]["detail"]
    assert "ssl true" in pg and db.ip in pg and "omnileads_ait" in pg, pg
    assert "cloud-ait" in uwsgi["reached"]["s3"]["detail"] and data.ip in uwsgi["reached"]["redis"]["detail"]
    assert "omnileads_ait" in managed_dbs(sandbox)
    assert https_with_tenant_ca(tenant, app.ip) == "omldeploy cloudait CA"
    assert_no_secret(tenant, proc.stdout, proc.stderr)
    assert cli(instances, "status", "--tenant", "cloudait").returncode == 0
    again = cli(instances, "install", "--tenant", "cloudait")
    assert again.returncode == 0 and last_record(tenant).changed == 0 and last_record(tenant).restarted == []
