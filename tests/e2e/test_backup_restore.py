"""Backup and restore on sandbox hosts, as an operator runs them (`omldeploy backup|restore|backups`).

One dedicated sandbox (`e2e-bk`, 4 Debian 12 hosts) for this module: an AIO tenant on h1 and an AIT
tenant on h2-h4, installed once (in parallel) and shared by the tests below, in order:
  AIO: data through psql (tables, thousands of rows, a large object) -> backup -> destroy -> restore ->
       every table's row count and checksum identical, Asterisk custom files back, dialplan reloaded,
       the app's media (media_root/ in the bucket, where the app reads it) back byte for byte;
       a corrupted backup is refused, named as corrupted, and the live database and components are untouched;
  AIT: the same across hosts (plain-SQL dump on the data host, files on the voice host), with --verify;
  prune: dry run, then --yes;
  CentOS 7: a plain-SQL dump uploaded by hand as backup/pgsql-backup-<NAME>.sql restores with
       restore_file_timestamp (the seed's procedure, via deploy.sh's path);
  errors: unknown id, wrong keys -> clear message, non-zero exit, nothing changed.
  fleet: a restore drill of each (scratch database gone after, live data and units untouched);
       `tenant destroy` (last) leaves nothing of the tenant on its hosts but, unless --purge-bucket, the
       bucket volume with the final backup.
No secret of the tenant may appear in any output or run log.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from commands import Ops, install_all  # tests/e2e/commands.py
from sandboxes import own_sandbox  # tests/e2e is on sys.path (rootdir-relative, no __init__)
from tenants import passwords, write_tenant

from omldeploy.inventory import Tenant, load_tenant
from omldeploy.sandbox import Sandbox
from omldeploy.state import ledger

NAME = os.environ.get("OMLDEPLOY_E2E_NAME", "e2e") + "-bk"  # another name runs beside CI
LIBRARY = Path(__file__).resolve().parents[2] / "src/omldeploy/apply/ansible/library/omldeploy_backup.py"
PSQL = "podman exec -i oml-postgresql-server psql -X -q -A -t -v ON_ERROR_STOP=1 -U omnileads -d {db}"

DATA_SQL = """
CREATE TABLE campaigns (id serial primary key, name text not null, active boolean default true);
INSERT INTO campaigns (name) SELECT 'campaign ' || g FROM generate_series(1, 40) g;
CREATE TABLE contacts (id serial primary key, campaign int references campaigns(id), phone text, data jsonb);
INSERT INTO contacts (campaign, phone, data)
  SELECT 1 + g % 40, '+54351' || lpad(g::text, 7, '0'), jsonb_build_object('n', g, 'h', md5(g::text))
  FROM generate_series(1, 6000) g;
CREATE TABLE calls (id bigserial primary key, contact int references contacts(id), secs int, ts timestamptz);
INSERT INTO calls (contact, secs, ts) SELECT 1 + g % 6000, g % 900, '2024-01-01'::timestamptz + g * interval '1 min'
  FROM generate_series(1, 9000) g;
CREATE TABLE recordings_meta (id int primary key, lo oid);
INSERT INTO recordings_meta VALUES (1, lo_from_bytea(0, convert_to(repeat('large object payload ', 5000), 'UTF8')));
"""

LO_SQL = ("SELECT 'lo=' || count(*) || ':' || coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)), '') "
          "FROM pg_largeobject_metadata;")


def load_s3_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("omldeploy_backup_e2e", LIBRARY)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bk_sandbox() -> Iterator[Sandbox]:
    with own_sandbox(NAME, ("debian12",) * 4) as sb:
        yield sb


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bk-instances")


@pytest.fixture(scope="module")
def tenants(bk_sandbox: Sandbox, instances: Path) -> dict[str, Tenant]:
    sb = bk_sandbox
    made = {"aio": write_tenant(instances, "bkaio", "aio", sb, [sb.host("h1")]),
            "ait": write_tenant(instances, "bkait", "ait", sb, [sb.host("h2"), sb.host("h3"), sb.host("h4")])}
    install_all(made)
    return made


@pytest.fixture
def ops(instances: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Ops]:
    o = Ops(instances, capsys)
    yield o
    assert_no_secrets(instances, o.seen)


def assert_no_secrets(instances: Path, outputs: list[str]) -> None:
    texts = list(outputs)
    for tdir in instances.iterdir():
        if (tdir / ".omldeploy/logs").is_dir():
            texts += [p.read_text() for p in (tdir / ".omldeploy/logs").iterdir()]
    for tdir in instances.iterdir():
        if not (tdir / "inventory.yml").is_file():  # .archive/ (tenant destroy)
            continue
        tenant = load_tenant(tdir, tdir.name)
        for secret in passwords(tenant):
            for text in texts:
                assert secret not in text, f"a secret of {tdir.name} leaked into output or a run log"


def psql(sb: Sandbox, host: str, sql: str, db: str = "omnileads") -> str:
    return sb.run(host, PSQL.format(db=db), input_text=sql, timeout=300).stdout.strip()


def fingerprint(sb: Sandbox, host: str, db: str = "omnileads") -> str:
    """Row count and checksum of every table of the public schema, and of the large objects."""
    tables = psql(sb, host, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;", db).split()
    sql = "".join(f"SELECT '{t}=' || count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') "
                  f"FROM \"{t}\" x;\n" for t in tables)
    return " ".join(psql(sb, host, sql + LO_SQL, db).split("\n"))


def bucket(tenant: Tenant, sb: Sandbox, data_host: str) -> Any:
    s = tenant.settings
    mod = load_s3_module()
    return mod.S3({"endpoint": f"http://{sb.host(data_host).ip}:9000", "region": "us-east-1",
                   "bucket": s.text("bucket_name"), "access_key": s.text("bucket_access_key"),
                   "secret_key": s.text("bucket_secret_key")})


def unit_pid(sb: Sandbox, host: str, unit: str) -> str:
    return sb.run(host, f"systemctl show -p MainPID --value {unit}.service").stdout.strip()


def backup_ids(ops: Ops, tenant: str) -> list[str]:
    code, out = ops("backups", "list", "--tenant", tenant, "--json")
    assert code == 0, out
    return [str(b["id"]) for b in json.loads(out[out.index("{"):])["backups"]]


def last_id(ops: Ops, tenant: str) -> str:
    return backup_ids(ops, tenant)[-1]


# ------------------------------------------------------------------------------------------- AIO

def test_aio_backup_destroy_restore(bk_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops) -> None:
    sb = bk_sandbox
    psql(sb, "h1", DATA_SQL)
    before = fingerprint(sb, "h1")
    assert "contacts=6000:" in before and "calls=9000:" in before and "lo=1:" in before
    sb.run("h1", "echo 'exten => 999,1,NoOp(backed up)' >> /etc/asterisk/custom/oml_extensions_custom.conf")
    custom_before = sb.run("h1", "md5sum /etc/asterisk/custom/oml_extensions_custom.conf").stdout.split()[0]
    s3 = bucket(tenants["aio"], sb, "h1")
    media_key, media = "media_root/audio/e2e-welcome.wav", b"RIFF" + secrets.token_bytes(200_000)
    s3.put(media_key, media)

    code, out = ops("backup", "--tenant", "bkaio")
    assert code == 0, out
    assert " media file(s) " in out
    assert "backup/pgsql-backup-" in out and ".dump" in out and "manifest.json" in out
    bid = last_id(ops, "bkaio")
    manifest = json.loads(bucket(tenants["aio"], sb, "h1").get(f"backup/{bid}/manifest.json"))
    assert manifest["postgresql"]["server_version"].startswith("15")
    assert manifest["versions"]["omnileads_version"] and manifest["tool"]["name"] == "omldeploy"
    assert {o["key"] for o in manifest["objects"]} >= {f"backup/pgsql-backup-{bid}.dump",
                                                       f"backup/asterisk/{bid}/oml_extensions_custom.conf"}
    assert all(len(o["sha256"]) == 64 for o in manifest["objects"])
    assert f"backup/media/{bid}/audio/e2e-welcome.wav" in {o["key"] for o in manifest["objects"]}

    # disaster: data gone, dialplan edited
    psql(sb, "h1", "DROP TABLE calls; DELETE FROM contacts WHERE id > 10; SELECT lo_unlink(lo) FROM recordings_meta;")
    sb.run("h1", "echo 'broken' > /etc/asterisk/custom/oml_extensions_custom.conf")
    s3.delete(media_key)
    assert fingerprint(sb, "h1") != before

    untouched = {u: unit_pid(sb, "h1", u) for u in ("nginx", "redis", "postgresql", "kamailio", "rtpengine")}
    code, out = ops("restore", "--tenant", "bkaio", "--ts", bid, "--yes")
    assert code == 0, out
    assert "every component is up and healthy" in out
    assert "file(s) put back into media_root/" in out
    # loaded in parallel from a spooled copy, which is gone; only the database's clients restarted, and
    # the outage (stop to healthy) is said and kept
    assert re.search(r"pg_restore -j [2-4] after a [0-9.]+s download", out), out
    assert "omldeploy-" not in sb.run("h1", "podman exec oml-postgresql-server ls /tmp").stdout
    assert {u: unit_pid(sb, "h1", u) for u in untouched} == untouched
    rec = [r for r in ledger.read(tenants["aio"].folder) if r.action == "restore"][-1]
    # recorded, and inside the run; its size is a figure of bench/backup_restore.py (a loaded machine,
    # such as CI with the HA tier beside this module, stretches it past the 10 s target)
    assert 0 < rec.extra["outage_seconds"] < rec.duration, (rec.extra, rec.duration)
    assert f"outage {rec.extra['outage_seconds']:.1f}s" in out
    assert fingerprint(sb, "h1") == before
    assert hashlib.sha256(s3.get(media_key)).hexdigest() == hashlib.sha256(media).hexdigest()
    assert sb.run("h1", "md5sum /etc/asterisk/custom/oml_extensions_custom.conf").stdout.split()[0] == custom_before
    assert sb.run("h1", f"cat /etc/asterisk/custom_{bid}/oml_extensions_custom.conf").stdout.strip() == "broken"
    cli = sb.run("h1", "podman exec oml-asterisk-server cat /var/log/asterisk/sandbox-cli.log").stdout
    assert "dialplan reload" in cli
    status = sb.run("h1", "systemctl is-active omnileads daphne omlcron asterisk postgresql").stdout.split()
    assert set(status) == {"active"}


def test_aio_corrupted_backup_leaves_live_system_untouched(bk_sandbox: Sandbox, tenants: dict[str, Tenant],
                                                          ops: Ops) -> None:
    sb = bk_sandbox
    bid = last_id(ops, "bkaio")
    s3 = bucket(tenants["aio"], sb, "h1")
    key = f"backup/pgsql-backup-{bid}.dump"
    original = s3.get(key)
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    s3.put(key, bytes(data))
    try:
        code, out = ops("backups", "verify", "--tenant", "bkaio", "--ts", bid)
        assert code == 1 and f"FAILED {key}: the object is corrupted" in out, out
        code, out = ops("backups", "list", "--tenant", "bkaio")
        assert "FAILED" in out

        psql(sb, "h1", "INSERT INTO campaigns (name) VALUES ('written after the backup')")
        live = fingerprint(sb, "h1")
        pids = {u: unit_pid(sb, "h1", u) for u in ("omnileads", "asterisk", "postgresql")}
        custom = sb.run("h1", "ls /etc/asterisk/").stdout
        code, out = ops("restore", "--tenant", "bkaio", "--ts", bid, "--yes")
        assert code == 1, out
        assert f"{key}: the object is corrupted: its sha256 differs from the manifest" in out, out
        assert "pg_restore failed" not in out and "nothing was changed" in out
        assert fingerprint(sb, "h1") == live
        assert {u: unit_pid(sb, "h1", u) for u in pids} == pids  # nothing was stopped or restarted
        assert sb.run("h1", "ls /etc/asterisk/").stdout == custom  # no staging dir left behind
        dbs = psql(sb, "h1", "SELECT datname FROM pg_database ORDER BY 1", db="postgres")
        assert "omnileads__restore" not in dbs
    finally:
        s3.put(key, original)


def test_errors_are_clear_and_change_nothing(bk_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops,
                                            instances: Path) -> None:
    code, out = ops("restore", "--tenant", "bkaio", "--ts", "1999999999", "--yes")
    assert code == 2 and "no backup '1999999999'" in out and "Known backups" in out, out
    code, out = ops("restore", "--tenant", "bkaio", "--yes")
    assert code == 2 and "restore_file_timestamp" in out
    inv = instances / "bkaio" / "inventory.yml"
    original = inv.read_text()
    data = yaml.safe_load(original)
    data["all"]["vars"]["bucket_secret_key"] = "e2e-wrong-secret-key-0000"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        code, out = ops("backup", "--tenant", "bkaio")
        assert code == 1 and "rejected" in out and "secret key" in out, out
        assert "e2e-wrong-secret-key-0000" not in out
        data["all"]["vars"]["bucket_secret_key"] = yaml.safe_load(original)["all"]["vars"]["bucket_secret_key"]
        data["all"]["vars"]["bucket_name"] = "no-such-bucket"
        inv.write_text(yaml.safe_dump(data, sort_keys=False))
        code, out = ops("backups", "list", "--tenant", "bkaio")
        assert code == 1 and "bucket 'no-such-bucket' does not exist" in out, out
    finally:
        inv.write_text(original)


def test_prune_dry_run_then_yes(bk_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops) -> None:
    if not backup_ids(ops, "bkaio"):  # run alone: make the older backup here
        assert ops("backup", "--tenant", "bkaio")[0] == 0
    first = last_id(ops, "bkaio")
    code, out = ops("backup", "--tenant", "bkaio")
    assert code == 0, out
    second = last_id(ops, "bkaio")
    assert second != first
    code, out = ops("backups", "prune", "--tenant", "bkaio", "--keep", "1")
    assert code == 0 and f"would delete backup {first}" in out and "dry run" in out, out
    code, out = ops("backups", "prune", "--tenant", "bkaio", "--keep", "1", "--yes")
    assert code == 0 and "deleted 1 backup(s)" in out, out
    _, out = ops("backups", "list", "--tenant", "bkaio")
    assert first not in out and second in out


def _set_vars(tenant: Tenant, **values: Any) -> None:
    data = yaml.safe_load(tenant.inventory_path.read_text())
    for k, v in values.items():
        if v is None:
            data["all"]["vars"].pop(k, None)
        else:
            data["all"]["vars"][k] = v
    tenant.inventory_path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_scheduled_backup_runs_on_the_host_then_goes_away(bk_sandbox: Sandbox, tenants: dict[str, Tenant],
                                                          ops: Ops) -> None:
    sb, t = bk_sandbox, tenants["aio"]
    unit = "omldeploy-backup-bkaio"
    _set_vars(t, backup_schedule="*-*-* 03:15", backup_keep=5)
    code, out = ops("install", "--tenant", "bkaio")
    assert code == 0, out
    assert ledger.read(t.folder)[-1].restarted == []  # a timer, not a reason to restart anything
    assert sb.run("h1", f"systemctl is-enabled {unit}.timer").stdout.strip() == "enabled"
    assert sb.run("h1", "stat -c %a /etc/omldeploy/backup/bkaio.json").stdout.strip() == "600"
    before = backup_ids(ops, "bkaio")
    sb.run("h1", f"systemctl start {unit}.service", timeout=600)  # what the timer does at 03:15
    new = last_id(ops, "bkaio")
    assert new not in before
    code, out = ops("backups", "verify", "--tenant", "bkaio", "--ts", new)
    assert code == 0, out
    code, out = ops("status", "--tenant", "bkaio")
    assert code == 0 and f"{unit}.timer: active, next " in out and "(success)" in out, out
    journal = sb.run("h1", f"journalctl -u {unit}.service --no-pager -o cat").stdout
    assert f"backup {new} done" in journal
    for secret in passwords(t):
        assert secret not in journal
    _set_vars(t, backup_schedule=None, backup_keep=None)
    code, out = ops("install", "--tenant", "bkaio")
    assert code == 0, out
    left = sb.run("h1", f"ls /etc/systemd/system/{unit}.* /etc/omldeploy/backup/bkaio.json "
                        "/usr/local/lib/omldeploy-backup/bkaio 2>/dev/null; "
                        f"systemctl is-active {unit}.timer", check=False).stdout.split()
    assert left == ["inactive"], left


# ------------------------------------------------------------------------------------------- AIT

def test_ait_plain_backup_verify_restore_across_hosts(bk_sandbox: Sandbox, tenants: dict[str, Tenant],
                                                      ops: Ops) -> None:
    """Dump on the data host, files on the voice host, restore switching the app host's components."""
    sb = bk_sandbox
    data_h, voice_h = "h2", "h3"
    psql(sb, data_h, DATA_SQL)
    before = fingerprint(sb, data_h)
    sb.run(voice_h, "printf '[sub-oml-custom]\\nexten => s,1,NoOp(ait)\\n' > /etc/asterisk/custom/my_override.conf")

    code, out = ops("backup", "--tenant", "bkait", "--format", "plain", "--verify")
    assert code == 0, out
    assert "omnileads_data" in out and "omnileads_voice:/etc/asterisk/custom" in out and ".sql" in out
    bid = last_id(ops, "bkait")
    assert f"backup {bid}: ok" in out and "dump readable (plain" in out
    code, out = ops("backups", "list", "--tenant", "bkait")
    assert code == 0 and bid in out and "yes" in out, out

    psql(sb, data_h, "TRUNCATE calls; UPDATE contacts SET phone = 'x'")
    sb.run(voice_h, "rm /etc/asterisk/custom/my_override.conf")
    code, out = ops("restore", "--tenant", "bkait", "--ts", bid, "--yes", "--drop-previous")
    assert code == 0, out
    assert "omnileads_app: " in out and "omnileads" in out  # the web app on the app host was stopped/started
    assert fingerprint(sb, data_h) == before
    assert "NoOp(ait)" in sb.run(voice_h, "cat /etc/asterisk/custom/my_override.conf").stdout
    assert "omnileads__previous" not in psql(sb, data_h, "SELECT datname FROM pg_database", db="postgres")
    assert "dialplan reload" in sb.run(voice_h, "podman exec oml-asterisk-server "
                                                "cat /var/log/asterisk/sandbox-cli.log").stdout


def test_centos7_plain_sql_migration_restores(bk_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops,
                                             instances: Path) -> None:
    """README "Migrating from OMniLeads 1.x": pg_dump (plain) + custom files uploaded by hand."""
    sb = bk_sandbox
    data_h, voice_h = "h2", "h3"
    # the "old instance": a database with its own content, dumped as the seed's procedure does
    psql(sb, data_h, "DROP DATABASE IF EXISTS legacy; CREATE DATABASE legacy;", db="postgres")
    psql(sb, data_h, DATA_SQL + "CREATE TABLE only_in_1x (id int); INSERT INTO only_in_1x VALUES (1), (2);",
         db="legacy")
    want = fingerprint(sb, data_h, "legacy")
    sb.run(data_h, "podman exec oml-postgresql-server pg_dump -U omnileads legacy > /root/pgsql-backup-oml1x.sql")
    dump = sb.run(data_h, "cat /root/pgsql-backup-oml1x.sql", timeout=120).stdout.encode()
    s3 = bucket(tenants["ait"], sb, data_h)
    s3.put("backup/pgsql-backup-oml1x.sql", dump)
    s3.put("backup/asterisk/oml1x/oml_extensions_custom.conf", b"; from CentOS 7\n")
    code, out = ops("backups", "list", "--tenant", "bkait")
    assert "oml1x" in out and "seed" in out

    inv = instances / "bkait" / "inventory.yml"
    original = inv.read_text()
    data = yaml.safe_load(original)
    data["all"]["vars"]["restore_file_timestamp"] = "oml1x"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        code, out = ops("restore", "--tenant", "bkait")  # as deploy.sh --action=restore runs it
        assert code == 0, out
        assert "no manifest" in out
    finally:
        inv.write_text(original)
    assert fingerprint(sb, data_h) == want
    assert sb.run(voice_h, "cat /etc/asterisk/custom/oml_extensions_custom.conf").stdout == "; from CentOS 7\n"


# ------------------------------------------------------------------------------------------- fleet

def doc(out: str) -> Any:
    """The JSON document in a command's output (stdout and stderr are kept together here)."""
    return json.JSONDecoder().raw_decode(out[out.index("{"):])[0]


def test_fleet_drill_restore(bk_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops) -> None:
    """Each tenant's newest backup into a scratch database, which is gone afterwards; live data, units and
    processes untouched; the proof shows in `fleet status`. (status and drift over many tenants:
    test_fleet.py)"""
    sb = bk_sandbox
    before = fingerprint(sb, "h1")
    pids = {u: unit_pid(sb, "h1", u) for u in ("postgresql", "omnileads", "nginx")}
    code, out = ops("fleet", "drill-restore", "--tenants", "bk*", "--json")
    assert code == 0, out
    drills = {r["tenant"]: r for r in doc(out)["tenants"]}
    assert drills["bkaio"]["ok"] and drills["bkaio"]["tables"] >= 4 and drills["bkaio"]["sha256_checked"]
    assert drills["bkait"]["ok"] and drills["bkait"]["tables"] >= 1
    for host in ("h1", "h2"):
        assert "__drill" not in psql(sb, host, "SELECT datname FROM pg_database", db="postgres")
    assert fingerprint(sb, "h1") == before
    assert {u: unit_pid(sb, "h1", u) for u in pids} == pids
    rec = ledger.read(tenants["aio"].folder)[-1]
    assert rec.action == "drill-restore" and rec.outcome == "ok" and rec.extra["id"] == drills["bkaio"]["id"]
    code, out = ops("fleet", "status", "--json", "--tenants", "bkaio")
    row = doc(out)["tenants"][0]
    assert row["proof_age_days"] == 0.0 and row["health"] == "healthy" and row["drift"] == 0, row
    assert row["backups_read"] and row["backup_age_hours"] is not None and row["backup_age_hours"] < 2, row


def _leftovers(sb: Sandbox, host: str, tenant: Tenant) -> str:
    """Everything of a tenant that could remain on a host, one finding per line ('' when clean)."""
    names = " ".join(f"{u}.service" for u in ("postgresql", "redis", "asterisk", "kamailio", "nginx", "omnileads",
                                              "minio", "rtpengine", "omlcron"))
    script = (f"systemctl list-units --all --no-legend {names} | grep -v 'not-found' || true; "
              "podman ps -a --format 'container {{.Names}}'; podman volume ls --format 'volume {{.Name}}'; "
              "ls -d /etc/omnileads /etc/asterisk/custom /etc/default/*.env /etc/systemd/system/omldeploy-* "
              f"/var/lib/omldeploy/{tenant.name} /etc/containers/systemd/*.container 2>/dev/null || true")
    return sb.run(host, script).stdout.strip()


def test_tenant_destroy_plan_then_destroy(bk_sandbox: Sandbox, tenants: dict[str, Tenant], ops: Ops,
                                          instances: Path) -> None:
    sb = bk_sandbox
    # the plan changes nothing
    code, out = ops("tenant", "destroy", "--tenant", "bkait")
    assert code == 0, out
    assert out.count("would remove") == 3 and "kept: volume oml_minio on" in out and "--yes" in out
    assert sb.run("h2", "systemctl is-active postgresql.service").stdout.strip() == "active"

    # AIT, bucket and all: nothing of the tenant is left on its three hosts
    code, out = ops("tenant", "destroy", "--tenant", "bkait", "--purge-bucket", "--yes")
    assert code == 0, out
    for host in ("h2", "h3", "h4"):
        assert _leftovers(sb, host, tenants["ait"]) == "", host
        assert sb.run(host, "test -e /etc/omnileads/omldeploy-owner", check=False).returncode != 0  # released
    assert not (instances / "bkait").exists()
    archives = sorted((instances / ".archive").glob("bkait-*.tar.gz"))
    assert len(archives) == 1 and archives[0].stat().st_mode & 0o777 == 0o600
    assert (instances / ".archive").stat().st_mode & 0o777 == 0o700
    record = ledger.read(instances / ".archive")[-1]
    assert record.action == "destroy" and record.outcome == "ok" and record.extra["tenant"] == "bkait"

    # AIO, by default: a final verified backup, kept with the bucket's volume; everything else goes
    code, out = ops("tenant", "destroy", "--tenant", "bkaio", "--yes")
    assert code == 0, out
    final = ledger.read(instances / ".archive")[-1].extra["final_backup"]
    assert final and f"final backup {final} verified" in out
    left = _leftovers(sb, "h1", tenants["aio"])
    assert left == "volume oml_minio", left
    assert "already" not in _destroy_again(ops, instances)


def _destroy_again(ops: Ops, instances: Path) -> str:
    """A destroyed tenant is gone from instances/: asking again is a clear input error."""
    code, out = ops("tenant", "destroy", "--tenant", "bkaio", "--yes")
    assert code == 2 and "tenant folder not found" in out, out
    return out
