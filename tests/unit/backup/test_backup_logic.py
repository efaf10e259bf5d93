"""Controller-side backup logic: ids and bucket layout, catalog, retention, manifests, where a backup runs
per layout, the host module's SigV4 signing (AWS's published examples) and the CLI's input checks."""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from omldeploy.backup import catalog, layout, manifest, retention
from omldeploy.cli.main import main
from omldeploy.ops.backup_progress import Bar
from omldeploy.render.backup_target import resolve, scratch_names
from omldeploy.render.build import render_tenant

from ..conftest import MakeTenant

LIBRARY = Path(__file__).resolve().parents[3] / "src/omldeploy/apply/ansible/library/omldeploy_backup.py"


def host_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("omldeploy_backup_unit", LIBRARY)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- layout

def test_layout_keeps_the_seed_names() -> None:
    assert layout.dump_key("1681215859") == "backup/pgsql-backup-1681215859.dump"
    assert layout.dump_key("1681215859", "plain") == "backup/pgsql-backup-1681215859.sql"
    assert layout.files_prefix("x1") == "backup/asterisk/x1/"
    assert layout.manifest_key("7") == "backup/7/manifest.json"
    assert layout.id_of("backup/pgsql-backup-oml1x.sql") == "oml1x"
    assert layout.id_of("backup/asterisk/1681215859/oml_extensions_custom.conf") == "1681215859"
    assert layout.id_of("backup/1681215859/verify.json") == "1681215859"
    assert layout.id_of("media_root/a.wav") is None and layout.id_of("backup/other.txt") is None
    assert layout.epoch_of("1681215859") == 1681215859 and layout.epoch_of("oml1x") is None
    assert layout.new_id(1681215859.7) == "1681215859"
    for good in ("1681215859", "oml1x", "NOMBRE_BACKUP", "a.b-c"):
        assert layout.valid_id(good)
    for bad in ("", "..", "a/b", "a b", "x" * 129, "$(id)"):
        assert not layout.valid_id(bad)


def _objects(bid: str, size: int = 100) -> list[dict[str, Any]]:
    return [{"key": f"backup/pgsql-backup-{bid}.dump", "size": size, "modified": ""},
            {"key": f"backup/asterisk/{bid}/a.conf", "size": 10, "modified": ""},
            {"key": f"backup/{bid}/manifest.json", "size": 500, "modified": ""}]


def _manifest(bid: str, epoch: int) -> dict[str, Any]:
    return manifest.build(backup_id=bid, tenant="t", layout="aio", versions={"omnileads_version": "1.27.1"},
                          images={}, db={"server_version": "15.4", "server_version_num": 150004},
                          objects=[{"key": f"backup/pgsql-backup-{bid}.dump", "size": 100, "sha256": "a" * 64,
                                    "kind": "dump-custom"},
                                   {"key": f"backup/asterisk/{bid}/a.conf", "size": 10, "sha256": "b" * 64,
                                    "kind": "file"}],
                          started=epoch, duration=3.2, dump_format="custom", db_mode="exec", files_host="h",
                          files_dir="/etc/asterisk/custom")


def test_catalog_groups_by_id_and_tells_kinds_apart() -> None:
    objs = _objects("1700000000") + _objects("1700086400") + [
        {"key": "backup/pgsql-backup-oml1x.sql", "size": 5000, "modified": ""},  # migration dump
        {"key": "backup/asterisk/1700090000/a.conf", "size": 1, "modified": ""},  # interrupted run
        {"key": "media_root/x.png", "size": 1, "modified": ""},
    ]
    docs = {"backup/1700000000/manifest.json": _manifest("1700000000", 1700000000),
            "backup/1700086400/manifest.json": _manifest("1700086400", 1700086400),
            "backup/1700086400/verify.json": {"ok": False, "epoch": 1700090000,
                                              "results": [{"key": "backup/pgsql-backup-1700086400.dump",
                                                           "ok": False, "error": "sha256 differs"}]}}
    entries = {e.id: e for e in catalog.build(objs, docs)}
    assert entries["1700000000"].kind == "omldeploy" and entries["1700000000"].size == 110
    assert entries["1700000000"].verified == "no" and entries["1700000000"].server_version == "15.4"
    assert entries["1700086400"].verified == "FAILED" and "sha256 differs" in entries["1700086400"].verify_detail
    assert entries["oml1x"].kind == "seed" and entries["oml1x"].created_epoch is None
    assert entries["1700090000"].kind == "incomplete"
    assert catalog.human_size(1_500_000) == "1.5 MB" and catalog.human_age(3 * 86400) == "3d"


def test_manifest_problems_and_accessors() -> None:
    doc = _manifest("1", 1700000000)
    assert manifest.problems(doc) == []
    assert manifest.dump_object(doc)["key"] == "backup/pgsql-backup-1.dump"  # type: ignore[index]
    assert [o["key"] for o in manifest.file_objects(doc)] == ["backup/asterisk/1/a.conf"]
    assert manifest.server_major(doc) == 15
    assert doc["total_bytes"] == 110 and doc["tool"]["name"] == "omldeploy"
    assert manifest.problems({"format": "x"})
    assert manifest.problems({**doc, "objects": [{"key": "k"}]})


def _entries(epochs: list[int]) -> list[catalog.Entry]:
    return [catalog.Entry(id=str(e), kind="omldeploy", created_epoch=e, size=1, objects=1, dump_key=None,
                          verified="no") for e in epochs]


def test_retention_never_the_newest_nor_seed_backups() -> None:
    day = 86400
    now = 1_700_000_000 + 10 * day
    entries = _entries([now - i * day for i in range(6)])
    entries.append(catalog.Entry(id="oml1x", kind="seed", created_epoch=None, size=1, objects=1,
                                 dump_key="k", verified="no"))
    entries.append(catalog.Entry(id=str(now - 3 * day), kind="incomplete", created_epoch=now - 3 * day, size=1,
                                 objects=1, dump_key=None, verified="no"))
    by_count = {e.id for e in retention.select(entries, keep=2, keep_days=None, now=now)}
    assert by_count == {str(now - i * day) for i in range(2, 6)} | {str(now - 3 * day)}
    by_age = {e.id for e in retention.select(entries, keep=None, keep_days=2.5, now=now)}
    assert str(now - 3 * day) in by_age and str(now - 2 * day) not in by_age
    both = retention.select(entries, keep=4, keep_days=1.5, now=now)
    assert {e.id for e in both if e.kind == "omldeploy"} == {str(now - 4 * day), str(now - 5 * day)}
    assert all(e.id != "oml1x" for e in both)
    only = _entries([now - 100 * day])
    assert retention.select(only, keep=1, keep_days=1, now=now) == []  # the newest stays
    with pytest.raises(ValueError):
        retention.select(entries, keep=None, keep_days=None, now=now)
    with pytest.raises(ValueError):
        retention.select(entries, keep=0, keep_days=None, now=now)


# ----------------------------------------------------------------------------- where it runs

def test_target_per_layout(make_tenant: MakeTenant) -> None:
    aio = make_tenant("aio")
    t = resolve(aio, render_tenant(aio))
    assert t.db_host == "omnileads_aio" and t.db["mode"] == "exec" and t.db["container"] == "oml-postgresql-server"
    assert t.files_host == "omnileads_aio" and t.s3["endpoint"] == "http://10.10.10.2:9000"
    assert not t.s3["verify_tls"]  # callrec_device: s3-no-check-cert in the example
    assert {"omnileads", "daphne", "omlcron", "asterisk"} <= set(t.db_clients["omnileads_aio"])
    assert "postgresql" not in t.db_clients["omnileads_aio"] and "nginx" not in t.db_clients["omnileads_aio"]

    ait = make_tenant("ait", name="t2")
    t = resolve(ait, render_tenant(ait))
    assert t.db_host == "omnileads_data" and t.db["mode"] == "exec" and t.files_host == "omnileads_voice"
    assert "omnileads" in t.db_clients["omnileads_app"] and "asterisk" in t.db_clients["omnileads_voice"]

    cloud = make_tenant("cloud", name="t3")
    t = resolve(cloud, render_tenant(cloud))
    assert t.db_host == "omnileads_app" and t.db["mode"] == "client"
    assert t.db["env_file"] == "/etc/default/django.env" and "omnileads/postgres:" in t.db["image"]
    assert t.db["maintenance_db"] == "defaultdb" and t.s3["endpoint"] == "https://sfo3.digitaloceanspaces.com"
    assert t.s3["verify_tls"]

    ha = make_tenant("ha", name="t4")
    t = resolve(ha, render_tenant(ha))
    assert t.db["mode"] == "client" and ha.host(t.db_host).ha_role == "main"
    assert len(t.files_hosts) == 2 and ha.host(t.files_hosts[0]).ha_role == "main"
    assert scratch_names("omnileads") == ("omnileads__restore", "omnileads__previous")
    assert all(len(n) <= 63 for n in scratch_names("x" * 63))


# ----------------------------------------------------------------------------- host module pieces

class _FixedNow(datetime.datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _FixedNow:  # type: ignore[override]
        return cls(2013, 5, 24, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("query", "signature"), [
    ({"lifecycle": ""}, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ({"max-keys": "2", "prefix": "J"}, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_sigv4_matches_aws_published_examples(monkeypatch: pytest.MonkeyPatch, query: dict[str, str],
                                              signature: str) -> None:
    mod = host_module()
    monkeypatch.setattr(mod.datetime, "datetime", _FixedNow)
    s3 = mod.S3({"endpoint": "", "region": "us-east-1", "bucket": "examplebucket",
                 "access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
    s3.host = "s3.amazonaws.com"
    headers = s3._headers("GET", s3._path(""), query, mod.EMPTY_SHA)
    assert headers["Authorization"].endswith(f"Signature={signature}")
    assert "wJalrXUtnFEMI" not in headers["Authorization"]


def test_pg_commands_carry_no_credentials() -> None:
    mod = host_module()
    exec_db = {"mode": "exec", "container": "oml-postgresql-server"}
    argv = mod.pg_argv(exec_db, "pg_dump", ["-d", "omnileads", "-Fc"])
    assert argv[:4] == ["podman", "exec", "-i", "oml-postgresql-server"]
    assert "${POSTGRES_PASSWORD" in " ".join(argv)  # expanded inside the container, never on the host
    client = {"mode": "client", "env_file": "/etc/default/django.env", "image": "r/omnileads/postgres:1"}
    argv = mod.pg_argv(client, "pg_restore", ["--list"])
    assert "--env-file=/etc/default/django.env" in argv and "--network=host" in argv and "--rm" in argv
    assert mod.ident('we"ird') == '"we""ird"' and mod.lit("o'k") == "'o''k'"
    assert mod.dump_format(b"PGDMP\x01\x0e") == "custom" and mod.dump_format(b"--\n-- PostgreSQL") == "plain"


def test_progress_bar_lines_when_not_a_tty() -> None:
    lines: list[str] = []
    bar = Bar("omnileads_data", lines.append, tty=False)
    bar({"phase": "dump", "bytes": 10_000_000, "total": 0, "seconds": 2})
    assert lines == []  # short transfers stay quiet
    bar({"phase": "restore", "bytes": 500_000_000, "total": 1_000_000_000, "seconds": 20})
    assert len(lines) == 1 and "50.0%" in lines[0] and "25.0 MB/s" in lines[0]


# ----------------------------------------------------------------------------- CLI input checks

def test_cli_input_errors_exit_2_and_do_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inst = tmp_path / "instances"
    assert main(["--instances", str(inst), "tenant", "new", "t", "--layout", "aio"]) == 0
    capsys.readouterr()
    assert main(["--instances", str(inst), "restore", "--tenant", "t", "--yes"]) == 2
    assert "restore_file_timestamp" in capsys.readouterr().err
    assert main(["--instances", str(inst), "backups", "prune", "--tenant", "t"]) == 2
    assert "--keep" in capsys.readouterr().err
    assert main(["--instances", str(inst), "backups", "prune", "--tenant", "t", "--keep", "0"]) == 2
    assert main(["--instances", str(inst), "backups", "verify", "--tenant", "t", "--ts", "a/b"]) == 2
    assert main(["--instances", str(inst), "backups", "list", "--tenant", "nope"]) == 2
    assert main(["--instances", str(inst), "backup", "--tenant", "t", "--format", "tar"]) == 2
    assert not (inst / "t" / ".omldeploy" / "ledger.jsonl").exists()


def test_deletion_order_puts_each_manifest_first_and_keeps_other_backups() -> None:
    objects = [{"key": k} for k in ("backup/asterisk/100/a.conf", "backup/pgsql-backup-100.dump",
                                    "backup/100/manifest.json", "backup/100/verify.json",
                                    "backup/pgsql-backup-200.dump", "backup/200/manifest.json", "media_root/x")]
    keys = retention.object_keys(objects, {"100"})
    assert keys[0] == "backup/100/manifest.json"
    assert sorted(keys) == sorted(["backup/asterisk/100/a.conf", "backup/pgsql-backup-100.dump",
                                   "backup/100/manifest.json", "backup/100/verify.json"])
