"""The host side of backup/restore against a real PostgreSQL 15 and a real S3 store (SeaweedFS).

What an operator relies on: a dump streamed to the bucket is byte-identical to what verify re-reads;
one flipped byte is found and the object named; a restore goes into a scratch database and only a
checked one replaces the live database; the seed's plain-SQL dumps restore; clear errors for a
missing bucket, wrong keys and unknown objects.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from omldeploy.backup import layout

from .conftest import PG, PGBIN, Store

TENANT = "it"


def make_bucket(mod: ModuleType, store: Store, name: str) -> Any:
    s3 = mod.S3(store.cfg(name))
    s3.request("PUT", "")
    return s3


def db_args(name: str) -> dict[str, Any]:
    return {"mode": "local", "container": "", "image": "", "env_file": "", "database": name,
            "maintenance_db": "postgres"}


def seed_database(pg: PG, name: str, rows: int = 3000, blob_mb: int = 0) -> None:
    pg.psql(f'DROP DATABASE IF EXISTS "{name}"')
    pg.psql(f'CREATE DATABASE "{name}"')
    pg.psql("CREATE TABLE agents (id serial primary key, name text, created timestamptz default now());"
            f"INSERT INTO agents (name) SELECT 'agent ' || g FROM generate_series(1, {rows}) g;"
            "CREATE TABLE calls (id bigserial primary key, agent int references agents(id), secs int, note text);"
            f"INSERT INTO calls (agent, secs, note) SELECT 1 + g % {rows}, g % 600, md5(g::text) "
            f"FROM generate_series(1, {rows * 3}) g;"
            "CREATE TABLE blobs (id int primary key, data bytea);"
            "SELECT lo_from_bytea(0, 'large object payload');", db=name)
    if blob_mb:  # incompressible: 1 MB of md5 output per row
        pg.psql("INSERT INTO blobs SELECT i, (SELECT decode(string_agg(md5(random()::text || i || g), ''), 'hex') "
                f"FROM generate_series(1, 65536) g) FROM generate_series(0, {blob_mb - 1}) i", db=name)


def fingerprint(pg: PG, name: str) -> dict[str, str]:
    out = {}
    for table in ("agents", "calls", "blobs"):
        out[table] = pg.psql(f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                             f"FROM {table} t", db=name)
    out["large_objects"] = pg.psql("SELECT count(*) FROM pg_largeobject_metadata", db=name)
    return out


def test_dump_upload_verify_then_one_corrupt_byte_is_named(mod: ModuleType, s3store: Store, host_env: PG,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.s3lib, "PART_SIZE", 5 * 1024 * 1024)  # S3's minimum part: several parts here
    seed_database(host_env, "oml_a", blob_mb=12)
    bucket = "bk-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    os.makedirs(custom := str(Path(os.environ["PGHOST"]).parent / "custom"), exist_ok=True)
    Path(custom, "oml_extensions_custom.conf").write_text("[custom]\nexten => 1,1,NoOp()\n")
    bid = layout.new_id()
    rep = mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_a"), "format": "custom",
                         "dump_key": layout.dump_key(bid), "files": {"dir": custom,
                                                                     "prefix": layout.files_prefix(bid)}})
    dump = rep["objects"][0]
    assert dump["key"] == f"backup/pgsql-backup-{bid}.dump" and dump["size"] > 12 * 1024 * 1024
    assert rep["server_version"].startswith("15")
    # what the bucket holds is byte-identical to what was hashed while streaming
    assert hashlib.sha256(s3.get(dump["key"])).hexdigest() == dump["sha256"]
    files = [o for o in rep["objects"] if o["kind"] == "file"]
    assert [o["key"] for o in files] == [f"backup/asterisk/{bid}/oml_extensions_custom.conf"]

    ok = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_a"),
                        "objects": rep["objects"]})
    assert ok["ok"], ok
    assert ok["results"][0]["format"] == "custom" and ok["results"][0]["toc_entries"] > 5

    # one byte flipped in the middle of the dump (same size): verify names that object
    data = bytearray(s3.get(dump["key"]))
    data[len(data) // 2] ^= 0x01
    s3.put(dump["key"], bytes(data))
    bad = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_a"),
                         "objects": rep["objects"]})
    assert not bad["ok"]
    failed = [r for r in bad["results"] if not r["ok"]]
    assert [r["key"] for r in failed] == [dump["key"]]
    assert failed[0]["error"].startswith("the object is corrupted: its sha256 differs"), failed[0]
    assert failed[0]["corrupted"]
    # and the Asterisk file still checks out
    assert all(r["ok"] for r in bad["results"] if r["key"] != dump["key"])


@pytest.mark.parametrize("jobs", [1, 2])
def test_restore_goes_through_scratch_and_swaps(mod: ModuleType, s3store: Store, host_env: PG, jobs: int) -> None:
    """jobs=1 streams the dump into pg_restore; jobs=2 spools it and runs `pg_restore -j 2`: same result."""
    pg = host_env
    seed_database(pg, "oml_b", rows=2000, blob_mb=1)
    before = fingerprint(pg, "oml_b")
    bucket = "bk-" + secrets.token_hex(4)
    make_bucket(mod, s3store, bucket)
    bid = layout.new_id()
    rep = mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_b"), "format": "custom",
                         "dump_key": layout.dump_key(bid)})
    dump = rep["objects"][0]
    # the live database changes after the backup
    pg.psql("DELETE FROM calls; DROP TABLE blobs; INSERT INTO agents (name) VALUES ('late')", db="oml_b")
    r = mod.op_restore_db({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_b"), "object": dump,
                           "scratch": "oml_b__restore", "jobs": jobs})
    assert r["checked_sha"] and r["tables"] == 3 and r["jobs"] == jobs
    assert (r["download_seconds"] is not None) == (jobs > 1)
    assert not list(Path("/var/tmp").glob("omldeploy-oml_b__restore*"))  # the spooled dump is gone
    # nothing live was touched yet
    assert pg.psql("SELECT count(*) FROM calls", db="oml_b") == "0"
    sw = mod.op_swap_db({"tenant": TENANT, "db": db_args("oml_b"), "scratch": "oml_b__restore",
                         "previous": "oml_b__previous"})
    assert sw["previous"] == "oml_b__previous"
    assert fingerprint(pg, "oml_b") == before
    assert pg.psql("SELECT count(*) FROM calls", db="oml_b__previous") == "0"  # the replaced one, kept aside


@pytest.mark.parametrize("jobs", [1, 2])
def test_corrupt_dump_never_reaches_live_database(mod: ModuleType, s3store: Store, host_env: PG, jobs: int) -> None:
    pg = host_env
    seed_database(pg, "oml_c", rows=500)
    bucket = "bk-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    bid = layout.new_id()
    dump = mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_c"),
                          "dump_key": layout.dump_key(bid)})["objects"][0]
    pg.psql("INSERT INTO agents (name) VALUES ('after backup')", db="oml_c")
    live = fingerprint(pg, "oml_c")
    data = bytearray(s3.get(dump["key"]))
    data[-10] ^= 0xFF
    s3.put(dump["key"], bytes(data))
    with pytest.raises(mod.OpError) as exc:
        mod.op_restore_db({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_c"), "object": dump,
                           "scratch": "oml_c__restore", "jobs": jobs})
    # named, and called what it is (not a pg_restore error message)
    assert str(exc.value).startswith(f"{dump['key']}: the object is corrupted: its sha256 differs"), exc.value
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'oml_c__restore'") == "0"
    assert fingerprint(pg, "oml_c") == live
    assert not list(Path("/var/tmp").glob("omldeploy-oml_c__restore*"))


def test_restore_streams_when_the_spool_has_no_room(mod: ModuleType, s3store: Store, host_env: PG,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_restore -j needs the whole dump on disk: where that room is missing, the dump streams instead."""
    pg = host_env
    seed_database(pg, "oml_e", rows=300)
    want = fingerprint(pg, "oml_e")
    bucket = "bk-" + secrets.token_hex(4)
    make_bucket(mod, s3store, bucket)
    dump = mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_e"),
                          "dump_key": layout.dump_key(layout.new_id())})["objects"][0]
    monkeypatch.setattr(mod, "SPOOL_MARGIN", 1 << 60)
    r = mod.op_restore_db({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_e"), "object": dump,
                           "scratch": "oml_e__restore", "jobs": 4})
    assert r["jobs"] == 1 and r["download_seconds"] is None and r["checked_sha"]
    assert fingerprint(pg, "oml_e__restore") == want


def test_backup_refuses_an_id_that_exists_before_dumping(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    seed_database(host_env, "oml_f", rows=10)
    bucket = "bk-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    s3.put("backup/pgsql-backup-77.sql", b"-- a seed dump of that id\n")
    rep = mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_f"), "ts": "77",
                         "dump_key": layout.dump_key("77")})
    assert rep == {"exists": ["backup/pgsql-backup-77.sql"], "objects": []}
    assert s3.head(layout.dump_key("77")) is None  # nothing was dumped


def test_seed_plain_sql_dump_uploaded_by_hand_restores(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    """The CentOS-7 migration: `pg_dump omnileads > pgsql-backup-NAME.sql`, copied to backup/ by hand."""
    pg = host_env
    seed_database(pg, "oml_old", rows=1500)
    want = fingerprint(pg, "oml_old")
    sql = subprocess.run([str(PGBIN / "pg_dump"), "oml_old"], capture_output=True, check=True,
                         env={**os.environ, **pg.env()}).stdout
    bucket = "bk-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    s3.put("backup/pgsql-backup-centos7.sql", sql)
    s3.put("backup/asterisk/centos7/oml_extensions_override.conf", b"; override\n")
    seed_database(pg, "oml_new", rows=3)  # the fresh install's database
    info = mod.op_inspect({"tenant": TENANT, "s3": s3store.cfg(bucket), "ts": "centos7", "db": db_args("oml_new")})
    assert info["manifest"] is None and info["dump"]["key"] == "backup/pgsql-backup-centos7.sql"
    assert [f["key"] for f in info["files"]] == ["backup/asterisk/centos7/oml_extensions_override.conf"]
    v = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_new"),
                       "objects": [info["dump"]]})
    assert v["ok"] and v["results"][0]["format"] == "plain" and v["results"][0]["dumped_from_major"] == 15
    r = mod.op_restore_db({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_new"),
                           "object": info["dump"], "scratch": "oml_new__restore"})
    assert r["format"] == "plain" and not r["checked_sha"]
    mod.op_swap_db({"tenant": TENANT, "db": db_args("oml_new"), "scratch": "oml_new__restore",
                    "previous": "oml_new__previous"})
    assert fingerprint(pg, "oml_new") == want
    staging = str(Path(os.environ["PGHOST"]).parent / "staging")
    mod.op_stage_files({"tenant": TENANT, "s3": s3store.cfg(bucket), "objects": info["files"],
                        "prefix": "backup/asterisk/centos7/", "staging": staging})
    assert Path(staging, "oml_extensions_override.conf").read_text() == "; override\n"


def test_truncated_plain_dump_fails_verification(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    seed_database(host_env, "oml_d", rows=100)
    sql = subprocess.run([str(PGBIN / "pg_dump"), "oml_d"], capture_output=True, check=True,
                         env={**os.environ, **host_env.env()}).stdout
    bucket = "bk-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    s3.put("backup/pgsql-backup-cut.sql", sql[: len(sql) // 2])
    v = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_d"),
                       "objects": [{"key": "backup/pgsql-backup-cut.sql", "kind": "dump"}]})
    assert not v["ok"] and "truncated" in v["results"][0]["error"]


def test_clear_errors_missing_bucket_wrong_keys_unknown_object(mod: ModuleType, s3store: Store,
                                                                host_env: PG) -> None:
    bucket = "bk-" + secrets.token_hex(4)
    make_bucket(mod, s3store, bucket)
    with pytest.raises(mod.OpError, match="bucket 'no-such-bucket-x' does not exist"):
        mod.op_probe({"tenant": TENANT, "s3": s3store.cfg("no-such-bucket-x")})
    wrong_secret = s3store.cfg(bucket, secret_key="not-the-secret-" + secrets.token_hex(4))
    with pytest.raises(mod.OpError, match="rejected the secret key") as exc:
        mod.op_probe({"tenant": TENANT, "s3": wrong_secret})
    assert wrong_secret["secret_key"] not in str(exc.value)
    with pytest.raises(mod.OpError, match="rejected the access key"):
        mod.op_probe({"tenant": TENANT, "s3": s3store.cfg(bucket, access_key="nobody")})
    info = mod.op_inspect({"tenant": TENANT, "s3": s3store.cfg(bucket), "ts": "1234567890"})
    assert info["manifest"] is None and "dump" not in info and info["files"] == []
    with pytest.raises(mod.OpError, match="object 'backup/nothing' does not exist"):
        mod.S3(s3store.cfg(bucket)).get("backup/nothing")
    with pytest.raises(mod.OpError, match="cannot reach the bucket endpoint"):
        mod.op_probe({"tenant": TENANT, "s3": {**s3store.cfg(bucket), "endpoint": "http://127.0.0.1:9"}})


def test_failed_pg_dump_leaves_no_object(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    bucket = "bk-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    with pytest.raises(mod.OpError, match="does not exist"):
        mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("no_such_db"),
                       "dump_key": "backup/pgsql-backup-1.dump"})
    assert s3.list("backup/") == []
