#!/usr/bin/env python3
"""Benchmark: the maintenance actions on one AIO host (root; PYTHONPATH=src python bench/maintenance.py).

Measured in one run, with an HTTPS probe on nginx every 50 ms where the web endpoint matters:
  - `restart_django` (omnileads, daphne, nginx in one systemd transaction, then each health-checked) against the naive
    `systemctl restart` of the same three units at once followed by a wait until healthy;
  - `restart` (the whole application stack, never PostgreSQL), and `update` with nothing to do;
  - the scheduled backup (`backup_schedule`): the host's oneshot service run by hand;
  - `recycle` after the alternative tag of every image was pulled: wall time and space freed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.upgrade_downtime import Probe  # noqa: E402
from tests.e2e.tenants import write_tenant  # noqa: E402

from omldeploy.inventory import load_tenant  # noqa: E402
from omldeploy.ops.converge import Reporter, converge, wait_until_healthy  # noqa: E402
from omldeploy.ops.recycle import recycle  # noqa: E402
from omldeploy.sandbox import Sandbox, UpRequest, down, up  # noqa: E402
from omldeploy.sandbox.images.build import build_and_push  # noqa: E402

NAME = "bench-maint"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    st = up(UpRequest(name=NAME, hosts=1, oses=("debian12",), registry=True, s3=False))
    lines: list[str] = []
    quiet = Reporter(say=lines.append, warn=lines.append)
    try:
        build_and_push(st, only=None)
        sb = Sandbox(st)
        inst = Path(tempfile.mkdtemp(prefix="omldeploy-bench-")) / "instances"
        tenant = write_tenant(inst, "maint", "aio", sb, [sb.host("h1")],
                              extra={"backup_schedule": "*-*-* 03:15", "backup_keep": 3})
        assert converge(load_tenant(tenant.folder), "install", quiet) == 0, "\n".join(lines[-40:])
        t = load_tenant(tenant.folder)
        url = f"https://{sb.host('h1').ip}/"

        with Probe(url) as probe:
            t0 = time.monotonic()
            assert converge(t, "restart_django", quiet, restart=True) == 0
            took = time.monotonic() - t0
        print(f"restart_django (one systemd transaction, then health checks): {took:.1f} s; {probe.report()}")
        with Probe(url) as probe:
            t0 = time.monotonic()
            sb.run("h1", "systemctl restart omnileads.service daphne.service nginx.service", timeout=600)
            wait_until_healthy(t)
            took = time.monotonic() - t0
        print(f"naive: systemctl restart of the three at once, then wait healthy: {took:.1f} s; {probe.report()}")

        t0 = time.monotonic()
        assert converge(t, "restart", quiet, restart=True) == 0
        print(f"restart (application stack): {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        assert converge(t, "update", quiet, stage_only=True) == 0
        print(f"update with nothing to do: {time.monotonic() - t0:.1f} s")

        t0 = time.monotonic()
        sb.run("h1", "systemctl start omldeploy-backup-maint.service", timeout=900)
        print(f"scheduled backup run on the host (AIO, small database): {time.monotonic() - t0:.1f} s")

        refs = sorted({sb.image_ref(key, "alt") for key in _image_keys(sb)})
        t0 = time.monotonic()
        sb.run("h1", "for i in " + " ".join(refs) + "; do podman pull -q $i >/dev/null; done", timeout=1800)
        print(f"pulled {len(refs)} older images in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        lines.clear()
        assert recycle(t, quiet) == 0
        freed = next((x for x in lines if x.startswith("freed")), "?")
        print(f"recycle: {time.monotonic() - t0:.1f} s; {freed}")
    finally:
        if not args.keep:
            down(NAME)
    return 0


def _image_keys(sb: Sandbox) -> list[str]:
    from omldeploy.sandbox.images.catalog import load_catalog

    return sorted(load_catalog())


if __name__ == "__main__":
    raise SystemExit(main())
