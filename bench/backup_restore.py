"""Benchmark: `omldeploy backup` / `omldeploy restore` of a generated database on a sandbox host, compared
in the same run with raw `pg_dump -Fc` to a local file / `pg_restore` from it on that host.

    PYTHONPATH=src python bench/backup_restore.py [--size-mb 1024] [--sandbox bench] [--keep] [--baseline REV]

Needs root (the sandbox). Creates (or reuses) sandbox NAME with one Debian 12 host and an AIO tenant,
generates a database of about --size-mb (pg_database_size), then measures, on the same host:
  raw backup     podman exec <pg> pg_dump -Fc > /var/tmp/file           (no upload, no checksum)
  raw restore    podman exec -i <pg> pg_restore -d <new db> < /var/tmp/file
  omldeploy      backup (dump streamed to the tenant bucket with sha256 + manifest), restore (sha256-checked
                 stream into a scratch database, stop clients, switch, start everything, wait for health)
With --baseline REV, REV's code (a git worktree) runs the same backup and restore first, on the same host
and database. A probe polls the web endpoint every 50 ms during each restore (how long the web app was
down); the restore's own outage figure (stop to healthy) comes from the ledger where the code records it.
Figures: MB/s of database size, and omldeploy/raw time ratios. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.upgrade_downtime import Probe  # noqa: E402

from omldeploy.backup.catalog import human_size  # noqa: E402
from omldeploy.inventory import load_tenant  # noqa: E402
from omldeploy.inventory.model import Tenant  # noqa: E402
from omldeploy.ops.converge import Reporter, converge  # noqa: E402
from omldeploy.sandbox import Sandbox, UpRequest, down, up  # noqa: E402
from omldeploy.sandbox.images.build import build_and_push  # noqa: E402
from omldeploy.state import ledger  # noqa: E402

PG = "podman exec {i} oml-postgresql-server {tool} -U omnileads"


def sh(sb: Sandbox, cmd: str, timeout: float = 3600) -> str:
    return sb.run("h1", cmd, timeout=timeout).stdout.strip()


def psql(sb: Sandbox, sql: str, db: str = "omnileads") -> str:
    return sb.run("h1", PG.format(i="-i", tool="psql") + f" -X -q -A -t -v ON_ERROR_STOP=1 -d {db}",
                  input_text=sql, timeout=7200).stdout.strip()


def timed(fn: object) -> float:
    t0 = time.monotonic()
    fn()  # type: ignore[operator]
    return time.monotonic() - t0


def generate(sb: Sandbox, size_mb: int) -> int:
    """Call-center-like tables (text, numbers, timestamps, jsonb) until pg_database_size >= size_mb."""
    psql(sb, "DROP TABLE IF EXISTS bench_calls, bench_contacts;"
             "CREATE TABLE bench_contacts (id bigint primary key, phone text, name text, data jsonb);"
             "CREATE TABLE bench_calls (id bigserial primary key, contact bigint, agent int, started timestamptz,"
             " secs int, disposition text, note text);")
    batch = 0
    while True:
        size = int(psql(sb, "SELECT pg_database_size(current_database())"))
        if size >= size_mb * 1_000_000:
            psql(sb, "VACUUM ANALYZE")
            return int(psql(sb, "SELECT pg_database_size(current_database())"))
        lo, hi = batch * 250_000 + 1, (batch + 1) * 250_000
        psql(sb, f"INSERT INTO bench_contacts SELECT g, '+54351' || lpad(g::text, 8, '0'), 'contact ' || md5(g::text),"
                 f" jsonb_build_object('campaign', g % 97, 'h', md5((g * 7)::text)) FROM generate_series({lo}, {hi}) g;"
                 f"INSERT INTO bench_calls (contact, agent, started, secs, disposition, note) SELECT g, g % 300,"
                 f" '2023-01-01'::timestamptz + g * interval '7 s', (g * 37) % 1800,"
                 f" (ARRAY['answered','busy','no answer','failed'])[1 + g % 4], md5(g::text) || md5((g + 1)::text)"
                 f" FROM generate_series({lo}, {hi}) g;")
        batch += 1


def cli(src: Path, inst: Path, *args: str) -> float:
    """One omldeploy command with the code under `src`, as an operator runs it; its wall time."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(inst), *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(src)}, timeout=7200)
    took = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"{src}: {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return took


def ours(src: Path, inst: Path, tenant: Tenant, url: str) -> dict[str, float]:
    """`omldeploy backup`, then `omldeploy restore` of that backup while a probe polls the web endpoint."""
    backup_s = cli(src, inst, "backup", "--tenant", tenant.name)
    rec = [r for r in ledger.read(tenant.folder) if r.action == "backup"][-1]
    with Probe(url) as probe:
        restore_s = cli(src, inst, "restore", "--tenant", tenant.name, "--ts", str(rec.extra["id"]), "--yes",
                        "--drop-previous")
    rrec = [r for r in ledger.read(tenant.folder) if r.action == "restore"][-1]
    return {"backup": backup_s, "dump_bytes": float(rec.extra["bytes"]), "restore": restore_s,
            "stream": float(rrec.extra.get("restore_seconds") or 0),
            "outage": float(rrec.extra.get("outage_seconds") or 0), "web_outage": probe.longest()}


def main_bench() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--sandbox", default="bench")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    ap.add_argument("--baseline", metavar="REV", help="also run REV's code on the same host and database")
    args = ap.parse_args()
    from tests.e2e.tenants import write_tenant

    codes = {"this": ROOT / "src"}
    worktree = None
    if args.baseline:
        worktree = Path(tempfile.mkdtemp(prefix="omldeploy-baseline-")) / "wt"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline],
                       check=True, capture_output=True)
        codes = {"baseline": worktree / "src", **codes}
    st = up(UpRequest(name=args.sandbox, hosts=1, oses=("debian12",), registry=True, s3=True))
    build_and_push(st, only=None)
    sb = Sandbox(st)
    inst = Path(tempfile.mkdtemp(prefix="omldeploy-bench-"))
    try:
        tenant = write_tenant(inst, "bench", "aio", sb, [sb.host("h1")])
        lines: list[str] = []
        if converge(tenant, "install", Reporter(say=lines.append, warn=lines.append)) != 0:
            print("\n".join(lines[-40:]))
            return 1
        print(f"generating a database of >= {args.size_mb} MB ...", flush=True)
        t_gen = timed(lambda: generate(sb, args.size_mb))
        db_bytes = int(psql(sb, "SELECT pg_database_size('omnileads')"))
        print(f"  {human_size(db_bytes)} in {t_gen:.0f}s", flush=True)

        # raw pg_dump / pg_restore on the host
        raw_dump = timed(lambda: sh(sb, PG.format(i="", tool="pg_dump") + " -Fc -d omnileads > /var/tmp/raw.dump"))
        dump_bytes = int(sh(sb, "stat -c %s /var/tmp/raw.dump"))
        psql(sb, "DROP DATABASE IF EXISTS rawrestore; CREATE DATABASE rawrestore TEMPLATE template0;", db="postgres")
        raw_restore = timed(lambda: sh(sb, PG.format(i="-i", tool="pg_restore")
                                       + " --no-owner --no-acl --exit-on-error -d rawrestore < /var/tmp/raw.dump"))
        psql(sb, "DROP DATABASE rawrestore;", db="postgres")
        sh(sb, "rm -f /var/tmp/raw.dump")

        url = f"https://{sb.host('h1').ip}/"
        figures = {who: ours(src, inst, tenant, url) for who, src in codes.items()}
        assert load_tenant(tenant.folder, "bench")

        mb = db_bytes / 1e6
        print(f"\ndatabase {human_size(db_bytes)}, raw dump {human_size(dump_bytes)} (sandbox Debian 12 host, "
              f"{os.cpu_count()} CPUs)")
        print(f"{'step':<58} {'seconds':>8} {'DB MB/s':>8} {'ratio':>6}")
        print(f"{'raw pg_dump -Fc > local file':<58} {raw_dump:8.1f} {mb / raw_dump:8.1f}")
        print(f"{'raw pg_restore < local file':<58} {raw_restore:8.1f} {mb / raw_restore:8.1f}")
        for who, f in figures.items():
            for name, secs, ref in ((f"{who}: omldeploy backup (end to end)", f["backup"], raw_dump),
                                    (f"{who}: omldeploy restore: load into the scratch db", f["stream"], raw_restore),
                                    (f"{who}: omldeploy restore (end to end)", f["restore"], raw_restore)):
                print(f"{name:<58} {secs:8.1f} {mb / secs:8.1f} {secs / ref:6.2f}")
            print(f"{who}: backup objects {human_size(int(f['dump_bytes']))}; restore outage "
                  + (f"{f['outage']:.1f} s (stop to healthy, from the ledger), " if f["outage"] else "")
                  + f"web endpoint down {f['web_outage']:.1f} s (probe every 50 ms)")
        print(json.dumps({"db_bytes": db_bytes, "raw_dump_bytes": dump_bytes, "raw_dump_s": raw_dump,
                          "raw_restore_s": raw_restore, **{who: f for who, f in figures.items()}}))
        return 0
    finally:
        if not args.keep:
            down(args.sandbox)
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)


if __name__ == "__main__":
    sys.exit(main_bench())
