#!/usr/bin/python3
"""Ansible module run ON an HA host: the facts and the single steps of the HA operations.

The controller (omldeploy.ops.ha) decides; this module only observes and performs one step, then
waits on the fact that proves the step worked (never a fixed sleep). Operations:
  facts              PostgreSQL role, timeline, WAL positions, replication and receiver state, the repmgr
                     node table, the fence marker; Redis replication and Sentinel's view; which keepalived
                     instances are MASTER here; the host's addresses; unit states. Changes nothing.
  units              start or stop units (start through start_units: the start limit is cleared first).
  pg_stop            stop repmgrd and PostgreSQL (a clean shutdown: the standby receives all WAL first).
  pg_promote         wait until the local standby replayed `min_lsn`, run the controller's promote
                     command, wait until `pg_is_in_recovery()` is false and repmgr names it primary.
  pg_rejoin          make this node a fresh standby of `source`: stop, keep the data directory aside,
                     clone, start, register, start repmgrd, wait until it streams, and only then delete
                     the kept directory. A failed clone puts the old directory back; a failure after the
                     clone leaves it kept, and the same operation re-run finishes the job.
  sentinel_failover  ask Sentinel to fail over and wait until it names `expect` as master.
Only the Python standard library is used on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped,import-not-found,unused-ignore]
from ansible.module_utils.omldeploy_units import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    journal,
    run,
    service,
    start_units,
    systemctl,
)

PG = "oml-postgresql-server"
REDIS = "oml-redis-server"
SENTINEL = "oml-sentinel-server"
KEPT_SUFFIX = ".replaced"

FACTS_SQL = """SELECT json_build_object(
 'in_recovery', pg_is_in_recovery(),
 'timeline', (SELECT timeline_id FROM pg_control_checkpoint()),
 'lsn', CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END,
 'replay_delay', CASE WHEN pg_is_in_recovery()
                 THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,
 'replicas', (SELECT coalesce(json_agg(json_build_object(
     'addr', host(client_addr), 'state', state,
     'lag_bytes', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) END,
     'lag_seconds', extract(epoch FROM replay_lag))), '[]'::json) FROM pg_stat_replication),
 'receiver', (SELECT json_build_object('status', status, 'sender', sender_host) FROM pg_stat_wal_receiver))"""
NODES_SQL = ("SELECT coalesce(json_agg(json_build_object('id', node_id, 'name', node_name, 'type', type, "
             "'active', active, 'upstream', upstream_node_id) ORDER BY node_id), '[]'::json) FROM repmgr.nodes")


class StepFailed(RuntimeError):
    """A step did not reach its fact; the message says what is true now and how to finish."""


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.5) -> tuple[Any, float]:
    """The probe's first truthy result and the seconds it took; StepFailed after `timeout`."""
    t0 = time.monotonic()
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last, time.monotonic() - t0
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            last = exc
        if time.monotonic() - t0 > timeout:
            raise StepFailed(f"{what}: not true after {timeout:.0f} s (last: {last})")
        time.sleep(every)


# ----------------------------------------------------------------------------- facts

def unit_state(unit: str) -> str:
    return systemctl("is-active", service(unit), check=False).stdout.strip() or "unknown"


def psql(p: dict[str, Any], sql: str, db: str | None = None, timeout: int = 10) -> str:
    proc = run(["podman", "exec", "-i", PG, "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                "-h", "/var/run/postgresql", "-U", p["pg_user"], "-d", db or p["pg_db"]], timeout=timeout,
               input_text=sql)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip()[-300:] or f"psql exit {proc.returncode}")
    return str(proc.stdout).strip()


def pg_facts(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": unit_state("postgresql"), "repmgrd": unit_state("repmgr"),
                           "guard": unit_state("oml-pg-guard"), "fenced": None}
    with contextlib.suppress(OSError, ValueError), open(p["fence_file"], encoding="utf-8") as fh:
        out["fenced"] = json.load(fh)
    if out["fenced"] is None and os.path.exists(p["fence_file"]):
        out["fenced"] = {"reason": "unreadable marker"}
    if out["unit"] != "active":
        return out
    try:
        out.update(json.loads(psql(p, FACTS_SQL)))
        out["answers"] = True
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        out["answers"] = False
        out["error"] = str(exc)[-200:]
        return out
    with contextlib.suppress(RuntimeError, ValueError, subprocess.TimeoutExpired):
        out["nodes"] = json.loads(psql(p, NODES_SQL, db="repmgr"))
    return out


#: the rendered files that hold each server's password in the seed's HA (components/redis_auth.py): read
#: here, on the host, so the password is neither a module argument nor on a command line
AUTH_FILES = {REDIS: "/etc/omnileads/redis/auth.conf", SENTINEL: "/etc/omnileads/sentinel.conf"}


def requirepass(path: str) -> str:
    """`requirepass` of a rendered Redis/Sentinel config ('' when absent: that server has no password)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key.lower() == "requirepass":
            return value.strip()
    return ""


def redis_cli(container: str, address: str, port: int, *args: str) -> str:
    """redis-cli in the server's own container; with a password, handed over as REDISCLI_AUTH through
    the environment (`--env NAME` copies it from this process), never on an argv."""
    env = dict(os.environ)
    auth: list[str] = []
    password = requirepass(AUTH_FILES.get(container, ""))
    if password:
        env["REDISCLI_AUTH"] = password
        auth = ["--env", "REDISCLI_AUTH"]
    proc = subprocess.run(["podman", "exec", *auth, container, "redis-cli", "-h", address, "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip()[-200:])
    return str(proc.stdout)


def redis_facts(address: str) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": unit_state("redis")}
    if out["unit"] != "active":
        return out
    try:
        text = redis_cli(REDIS, address, 6379, "INFO", "replication")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {**out, "error": str(exc)}
    info = dict(line.split(":", 1) for line in text.replace("\r", "").splitlines() if ":" in line)
    out.update(role=info.get("role"), master_host=info.get("master_host"),
               link=info.get("master_link_status"), offset=int(info.get("master_repl_offset", 0) or 0),
               replicas=[dict(kv.split("=", 1) for kv in v.split(",") if "=" in kv)
                         for k, v in info.items() if re.fullmatch(r"slave\d+", k)])
    return out


def sentinel_facts(address: str) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": unit_state("sentinel")}
    if out["unit"] != "active":
        return out
    try:
        words = redis_cli(SENTINEL, address, 26379, "SENTINEL", "master", "master").split("\n")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {**out, "error": str(exc)}
    kv = dict(zip(words[0::2], words[1::2], strict=False))
    out.update(master=kv.get("ip"), flags=kv.get("flags", ""), replicas=int(kv.get("num-slaves", 0) or 0),
               others=int(kv.get("num-other-sentinels", 0) or 0), quorum=int(kv.get("quorum", 0) or 0),
               epoch=int(kv.get("config-epoch", 0) or 0))
    try:
        words = redis_cli(SENTINEL, address, 26379, "SENTINEL", "replicas", "master").split("\n")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {**out, "error": str(exc)}
    out["replica_views"] = replica_views(words)
    return out


def replica_views(words: list[str]) -> list[dict[str, str]]:
    """`SENTINEL REPLICAS` as redis-cli prints it (one word per line, records back to back, each opening
    with `name`): per replica its address, Sentinel's flags and the role it last reported. A live
    replica last seen reporting `master` means this Sentinel has not polled it since a failover (its
    INFO period is 10 s); a promotion of it in that window is turned back by this Sentinel
    (`+convert-to-slave`) and the failover times out, so the pair is not settled yet."""
    views: list[dict[str, str]] = []
    for key, value in zip(words[0::2], words[1::2], strict=False):
        if key == "name":
            views.append({})
        if views and key in ("ip", "flags", "role-reported"):
            views[-1][key] = value
    return views


def addresses() -> list[str]:
    proc = run(["ip", "-j", "-4", "addr", "show"], timeout=10)
    with contextlib.suppress(ValueError):
        return sorted(a["local"] for i in json.loads(proc.stdout or "[]") for a in i.get("addr_info", []))
    return []


def keepalived_states(state_dir: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(state_dir)):
            if name.endswith(".state"):
                with contextlib.suppress(OSError), open(os.path.join(state_dir, name), encoding="utf-8") as fh:
                    out[name.removesuffix(".state")] = fh.read().strip()
    return out


def facts(p: dict[str, Any]) -> dict[str, Any]:
    units = p["units"]
    out: dict[str, Any] = {"addresses": addresses(), "units": {u: unit_state(u) for u in units},
                           "keepalived": keepalived_states(p["state_dir"]) if "keepalived" in units else {}}
    if "postgresql" in units:
        out["pg"] = pg_facts(p)
    if "redis" in units:
        out["redis"] = redis_facts(p["lan"])
    if "sentinel" in units:
        out["sentinel"] = sentinel_facts(p["lan"])
    return out


# ----------------------------------------------------------------------------- steps

def lsn(text: str | None) -> int:
    if not text or "/" not in text:
        return -1
    hi, lo = text.split("/", 1)
    return (int(hi, 16) << 32) + int(lo, 16)


def stop_units(units: list[str]) -> None:
    systemctl("stop", *[service(u) for u in units], check=False)
    still = [u for u in units if unit_state(u) in ("active", "deactivating")]
    if still:
        raise StepFailed(f"could not stop {', '.join(still)}")


def pg_stop(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    stop_units(["repmgr", "postgresql"])
    return {"changed": True, "stopped": ["repmgr", "postgresql"], "seconds": round(time.monotonic() - t0, 1)}


def in_recovery(p: dict[str, Any]) -> bool | None:
    value = psql(p, "SELECT pg_is_in_recovery()")
    return {"t": True, "f": False}.get(value)


def pg_promote(p: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {"changed": False, "steps": []}
    if in_recovery(p) is False:
        raise StepFailed("this node is already primary: nothing promoted")
    target = lsn(p.get("min_lsn"))
    _, took = wait_for(f"standby replayed up to {p.get('min_lsn')}",
                       lambda: lsn(json.loads(psql(p, FACTS_SQL))["lsn"]) >= target, p["timeout"])
    report["steps"].append({"step": "caught up", "seconds": round(took, 1)})
    t0 = time.monotonic()
    proc = run(p["promote_argv"], timeout=int(p["timeout"]) + 60)
    report["changed"] = True
    if proc.returncode != 0:
        raise StepFailed(f"repmgr standby promote failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    wait_for("pg_is_in_recovery() false", lambda: in_recovery(p) is False, p["timeout"])
    me = p["node_name"]
    wait_for("repmgr names this node primary", lambda: any(
        n["name"] == me and n["type"] == "primary" and n["active"]
        for n in json.loads(psql(p, NODES_SQL, db="repmgr"))), p["timeout"])
    report["steps"].append({"step": "promoted", "seconds": round(time.monotonic() - t0, 1)})
    return report


def volume_dir(volume: str) -> str:
    proc = run(["podman", "volume", "inspect", "--format", "{{.Mountpoint}}", volume], timeout=30)
    path = str(proc.stdout).strip()
    if proc.returncode != 0 or not path.startswith("/"):
        raise StepFailed(f"podman volume {volume} not found: {(proc.stderr or '').strip()[-200:]}")
    return path


def pg_rejoin(p: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {"changed": True, "steps": []}

    def step(name: str, t0: float) -> None:
        report["steps"].append({"step": name, "seconds": round(time.monotonic() - t0, 1)})

    t0 = time.monotonic()
    stop_units(["repmgr", "postgresql"])
    step("stopped", t0)
    data = os.path.join(volume_dir(p["volume"]), p["pgdata"])
    kept = data + KEPT_SUFFIX
    if os.path.isdir(kept):
        # an earlier attempt set the original aside: it stays the one to keep; what is in `data` now is
        # that attempt's unverified clone
        shutil.rmtree(data, ignore_errors=True)
        report["resumed"] = True
    elif os.path.isdir(data):
        os.rename(data, kept)
    t0 = time.monotonic()
    proc = run(p["clone_argv"], timeout=int(p["clone_timeout"]))
    if proc.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        if os.path.isdir(kept):
            os.rename(kept, data)
        raise StepFailed(f"repmgr standby clone from {p['source']} failed ({proc.returncode}); this node's data "
                         f"directory was put back as it was: {(proc.stderr or proc.stdout).strip()[-500:]}")
    step("cloned", t0)
    t0 = time.monotonic()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p["fence_file"])
    start_units(["postgresql"])
    wait_for("PostgreSQL accepts connections", lambda: run(
        ["podman", "exec", PG, "pg_isready", "-q", "-h", "/var/run/postgresql"], timeout=10).returncode == 0,
        p["timeout"])
    step("started", t0)
    if in_recovery(p) is not True:
        raise StepFailed("the cloned node started as a primary (not in recovery); the kept data directory "
                         f"is {kept}")
    t0 = time.monotonic()
    wait_for("repmgr standby register", lambda: run(p["register_argv"], timeout=60).returncode == 0, 60, 1)
    start_units(["repmgr"])
    step("registered", t0)
    t0 = time.monotonic()
    wait_for(f"streaming from {p['source']}", lambda: (json.loads(psql(p, FACTS_SQL)).get("receiver") or {})
             .get("status") == "streaming", p["timeout"])
    step("streaming", t0)
    shutil.rmtree(kept, ignore_errors=True)
    report["kept_removed"] = True
    return report


def sentinel_failover(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    out = redis_cli(SENTINEL, p["lan"], 26379, "SENTINEL", "FAILOVER", "master").strip()
    if out != "OK":
        raise StepFailed(f"Sentinel refused the failover: {out}")

    def named() -> bool:
        words = redis_cli(SENTINEL, p["lan"], 26379, "SENTINEL", "get-master-addr-by-name", "master").split()
        return bool(words) and words[0] == p["expect"]

    wait_for(f"Sentinel names {p['expect']} master", named, p["timeout"])
    return {"changed": True, "seconds": round(time.monotonic() - t0, 1)}


def units_op(p: dict[str, Any]) -> dict[str, Any]:
    if p["start"]:
        start_units(p["start"])
        wait_for(f"{', '.join(p['start'])} active", lambda: all(unit_state(u) == "active" for u in p["start"]),
                 p["timeout"])
    if p["stop"]:
        stop_units(p["stop"])
    return {"changed": bool(p["start"] or p["stop"]), "started": p["start"], "stopped": p["stop"]}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "facts": facts, "units": units_op, "pg_stop": pg_stop, "pg_promote": pg_promote, "pg_rejoin": pg_rejoin,
    "sentinel_failover": sentinel_failover,
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tenant": {"type": "str", "required": True},
            "op": {"type": "str", "required": True, "choices": sorted(OPS)},
            "lan": {"type": "str", "default": ""},
            "units": {"type": "list", "elements": "str", "default": []},
            "start": {"type": "list", "elements": "str", "default": []},
            "stop": {"type": "list", "elements": "str", "default": []},
            "state_dir": {"type": "str", "default": "/run/omnileads/keepalived"},
            "fence_file": {"type": "str", "default": "/var/lib/omnileads/postgresql-ha/fenced"},
            "pg_user": {"type": "str", "default": "postgres"},
            "pg_db": {"type": "str", "default": "postgres"},
            "node_name": {"type": "str", "default": ""},
            "min_lsn": {"type": "str", "default": ""},
            "promote_argv": {"type": "list", "elements": "str", "default": []},
            "clone_argv": {"type": "list", "elements": "str", "default": []},
            "register_argv": {"type": "list", "elements": "str", "default": []},
            "source": {"type": "str", "default": ""},
            "volume": {"type": "str", "default": "oml_postgres"},
            "pgdata": {"type": "str", "default": "pgdata"},
            "expect": {"type": "str", "default": ""},
            "timeout": {"type": "float", "default": 120.0},
            "clone_timeout": {"type": "float", "default": 1800.0},
        },
        supports_check_mode=False,
    )
    p = module.params
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", p["tenant"]) or "/" in p["pgdata"] or ".." in p["pgdata"]:
        module.fail_json(msg="bad tenant name or data directory")
    try:
        report = OPS[p["op"]](p)
    except (StepFailed, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        detail = str(exc)
        if p["op"] in ("pg_rejoin", "pg_promote"):
            detail += "\nlast journal lines of postgresql:\n" + journal("postgresql", 15)
        module.fail_json(msg=detail, report={"failed": True, "error": detail})
    module.exit_json(changed=bool(report.get("changed")), report=report)


if __name__ == "__main__":
    main()
