"""The host module against a bucket that misbehaves (a fault proxy in front of weed), and media round trips.

What an operator relies on: a loaded bucket answering a few 500/503s or cutting a download does not cost
a backup (each multipart part is resent from its buffer, a download resumes where it broke), every retry
is announced, and a backup made that way is byte-exact (verify accepts its manifest); errors that are not
transient (403 keys, 400 bad digest) fail at once. Media the app keeps in the bucket (media_root/) is in
the backup and a restore puts it back, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from types import ModuleType

import pytest

from omldeploy.backup import catalog, layout, manifest

from .conftest import PG, Store
from .faults import both, every_kth_put, first_n, proxy
from .test_backup_module import TENANT, db_args, make_bucket, seed_database

RETRY_LINE = re.compile(r"^S3 (PUT|POST|GET|HEAD|DELETE) .+: \d{3} \w+, retry [1-4]/4 in \d+\.\d s$")


def test_backup_survives_transient_errors_and_verifies(mod: ModuleType, s3store: Store, host_env: PG,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.s3lib, "PART_SIZE", 5 * 1024 * 1024)  # several parts, each one retried alone
    seed_database(host_env, "oml_flaky", rows=800, blob_mb=14)
    bucket = "flaky-" + secrets.token_hex(4)
    direct = make_bucket(mod, s3store, bucket)
    direct.put("media_root/audio/welcome.wav", b"RIFF" + secrets.token_bytes(70_000))
    bid = layout.new_id()
    # the first 2 requests fail, then every 3rd PUT (parts, files, media copies, manifest) with a 500;
    # a 503 SlowDown too: throttling is transient as well
    with proxy(s3store.endpoint, both(first_n(2), every_kth_put(3), every_kth_put(2, 503, "SlowDown"))) as faults:
        cfg = s3store.cfg(bucket, endpoint=faults.endpoint)
        t0 = time.monotonic()
        rep = mod.op_backup({"tenant": TENANT, "s3": cfg, "db": db_args("oml_flaky"), "format": "custom",
                             "dump_key": layout.dump_key(bid),
                             "media": {"source": layout.MEDIA_SOURCE, "prefix": layout.media_prefix(bid)}})
        seconds = time.monotonic() - t0
        doc = manifest.build(backup_id=bid, tenant=TENANT, layout="aio", versions={}, images={}, db=rep,
                             objects=rep["objects"], started=time.time(), duration=seconds, dump_format="custom",
                             db_mode="local", files_host=None, files_dir="/etc/asterisk/custom")
        mod.op_put_json({"tenant": TENANT, "s3": cfg, "key": layout.manifest_key(bid), "document": doc})
        injected = faults.injected()
        parts = [s for s in faults.seen if "partNumber=" in s.path]
    assert len(injected) >= 4, faults.seen
    assert any("partNumber=" in s.path for s in injected)  # a multipart part was failed and resent
    assert {s.status for s in injected} >= {500, 503}
    assert len({s.path for s in parts}) >= 3  # several parts
    # every retry was announced, in the documented form
    assert len(mod.NOTES) == len(injected), (mod.NOTES, injected)
    assert all(RETRY_LINE.match(n) for n in mod.NOTES), mod.NOTES
    assert any(" part " in n for n in mod.NOTES)
    assert any(": 500 InternalError, retry 1/4 in " in n for n in mod.NOTES)

    # the bucket holds exactly what was hashed, and verify (directly, no faults) accepts the manifest
    stored = json.loads(direct.get(layout.manifest_key(bid)))
    assert manifest.problems(stored) == []
    dump = manifest.dump_object(stored)
    assert dump is not None and hashlib.sha256(direct.get(dump["key"])).hexdigest() == dump["sha256"]
    media = manifest.media_objects(stored)
    assert [m["source"] for m in media] == ["media_root/audio/welcome.wav"]
    ok = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket), "db": db_args("oml_flaky"),
                        "objects": stored["objects"]})
    assert ok["ok"], ok
    entries = catalog.build(direct.list("backup/"), {layout.manifest_key(bid): stored})
    assert [(e.id, e.kind, e.objects) for e in entries] == [(bid, "omldeploy", len(stored["objects"]))]

    # verify through a proxy that cuts every large download halfway: it resumes with Range and still agrees
    mod.NOTES.clear()
    with proxy(s3store.endpoint, cut_get=lambda n, method, path: "pgsql-backup" in path) as faults:
        again = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket, endpoint=faults.endpoint),
                               "db": db_args("oml_flaky"), "objects": stored["objects"]})
        cuts = faults.injected()
    assert again["ok"], again
    assert cuts and any("at byte" in n for n in mod.NOTES), mod.NOTES


def test_non_transient_errors_are_not_retried(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    bucket = "strict-" + secrets.token_hex(4)
    make_bucket(mod, s3store, bucket)
    with proxy(s3store.endpoint, every_kth_put(1, 400, "BadDigest")) as faults:
        client = mod.S3(s3store.cfg(bucket, endpoint=faults.endpoint), on_retry=mod.note)
        with pytest.raises(mod.S3Error, match="BadDigest"):
            client.put("backup/x", b"data")
        assert len(faults.seen) == 1
    with pytest.raises(mod.OpError, match="rejected the secret key"):
        mod.bucket({"s3": s3store.cfg(bucket, secret_key="wrong-" + secrets.token_hex(4))}).put("backup/y", b"1")
    with pytest.raises(mod.OpError, match="does not exist"):
        mod.bucket({"s3": s3store.cfg(bucket)}).get("backup/none")
    assert mod.NOTES == []


def test_retries_are_bounded(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    bucket = "down-" + secrets.token_hex(4)
    make_bucket(mod, s3store, bucket)
    with proxy(s3store.endpoint, first_n(1000, 503, "SlowDown")) as faults:
        with pytest.raises(mod.OpError, match=r"SlowDown.*gave up after 5 attempts"):
            mod.bucket({"s3": s3store.cfg(bucket, endpoint=faults.endpoint)}).put("backup/z", b"1")
        assert len(faults.seen) == 5
    assert [n.rsplit("retry ", 1)[1].split()[0] for n in mod.NOTES] == ["1/4", "2/4", "3/4", "4/4"]


def test_media_snapshot_is_put_back_byte_for_byte(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    bucket = "media-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    files = {"media_root/audio/ivr.wav": secrets.token_bytes(300_000),
             "media_root/bases/contacts.csv": b"phone,name\n+5435100001,Ana\n",
             "media_root/kept.txt": b"unchanged"}
    for key, data in files.items():
        s3.put(key, data)
    bid = layout.new_id()
    rep = mod.op_backup({"tenant": TENANT, "s3": s3store.cfg(bucket),
                         "media": {"source": layout.MEDIA_SOURCE, "prefix": layout.media_prefix(bid)}})
    media = [o for o in rep["objects"] if o["kind"] == "media"]
    assert sorted(o["source"] for o in media) == sorted(files)
    assert all(o["key"].startswith(f"backup/media/{bid}/") and layout.id_of(o["key"]) == bid for o in media)
    # after the backup: one file deleted, one overwritten, one new, one untouched
    s3.delete("media_root/audio/ivr.wav")
    s3.put("media_root/bases/contacts.csv", b"garbage")
    s3.put("media_root/new-after-backup.wav", b"new")
    checked = mod.op_verify({"tenant": TENANT, "s3": s3store.cfg(bucket), "objects": media})
    assert checked["ok"], checked
    out = mod.op_restore_media({"tenant": TENANT, "s3": s3store.cfg(bucket), "objects": media,
                                "prefix": layout.MEDIA_SOURCE})
    assert sorted(out["copied"]) == ["media_root/audio/ivr.wav", "media_root/bases/contacts.csv"]
    assert out["unchanged"] == 1
    for key, data in files.items():
        assert hashlib.sha256(s3.get(key)).hexdigest() == hashlib.sha256(data).hexdigest(), key
    assert s3.get("media_root/new-after-backup.wav") == b"new"  # as the seed's sync: nothing deleted
    with pytest.raises(mod.OpError, match="unsafe target"):
        mod.op_restore_media({"tenant": TENANT, "s3": s3store.cfg(bucket), "prefix": layout.MEDIA_SOURCE,
                              "objects": [{**media[0], "source": "backup/1/manifest.json"}]})
