"""The scheduled-backup agent (what the host's timer runs) against a real PostgreSQL and S3 store:
it writes a backup the controller's catalog sees as complete and verifiable, never reuses an id taken
by another backup in the same second, and applies the inventory's retention after each run."""

from __future__ import annotations

import json
import secrets
from types import ModuleType
from typing import Any

from omldeploy.backup import agent, catalog, layout, manifest

from .conftest import PG, Store
from .test_backup_module import db_args, make_bucket, seed_database


def config(store: Store, bucket: str, **over: Any) -> dict[str, Any]:
    return {"tenant": "it", "host": "omnileads_aio", "schedule": "daily", "layout": "aio",
            "s3": store.cfg(bucket), "db": db_args("oml_sched"), "format": "custom", "files": False,
            "files_elsewhere": "omnileads_voice", "keep": None, "keep_days": None,
            "versions": {"omnileads_version": "1.0"}, "images": {"omnileads_aio": ["x/y:1"]}, **over}


def test_agent_backups_are_complete_unique_and_pruned(mod: ModuleType, s3store: Store, host_env: PG) -> None:
    seed_database(host_env, "oml_sched", rows=500)
    bucket = "sched-" + secrets.token_hex(4)
    s3 = make_bucket(mod, s3store, bucket)
    now = 1_700_000_000.0
    first = agent.run(config(s3store, bucket), mod, now=now)
    second = agent.run(config(s3store, bucket), mod, now=now)  # same second: the next free id
    assert (first, second) == (str(int(now)), str(int(now) + 1))

    doc = json.loads(s3.get(layout.manifest_key(first)))
    assert manifest.problems(doc) == []
    assert doc["scheduled"] == {"host": "omnileads_aio", "schedule": "daily"}
    assert "omnileads_voice" in doc["asterisk"]["note"] and doc["asterisk"]["files"] == 0
    dump = manifest.dump_object(doc)
    assert dump is not None
    assert mod.op_verify({"tenant": "it", "s3": s3store.cfg(bucket), "objects": doc["objects"],
                          "db": db_args("oml_sched")})["ok"]

    third = agent.run(config(s3store, bucket, keep=2), mod, now=now + 60)
    listing = mod.op_catalog({"tenant": "it", "s3": s3store.cfg(bucket)})
    entries = catalog.build(listing["objects"], listing["documents"])
    assert [(e.id, e.kind) for e in entries] == [(second, "omldeploy"), (third, "omldeploy")]
