#!/usr/bin/env python3
"""Benchmark: AIO install, AIT install, no-op re-runs, and the naive "restart every unit" re-run.

Usage (root): PYTHONPATH=src python bench/install.py [--runs 3] [--keep]

Boots a sandbox `bench` (4 Debian 12 hosts: 1 AIO + 3 AIT) with the test images, then measures:
  - AIO install wall time (cold: images pulled from the sandbox registry);
  - AIO and AIT no-op re-run (`install` again, nothing changed);
  - the same AIT no-op re-run done the naive way (the seed's behaviour: re-apply everything and
    restart every unit in matrix order, then wait until every unit is healthy again).
Figures are printed; nothing is asserted (tests assert behaviour, this measures it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.e2e.tenants import write_tenant  # noqa: E402

from omldeploy.inventory import Tenant  # noqa: E402
from omldeploy.ops.converge import Reporter, converge, wait_until_healthy  # noqa: E402
from omldeploy.render.build import render_tenant  # noqa: E402
from omldeploy.sandbox import Sandbox, UpRequest, down, up  # noqa: E402
from omldeploy.sandbox.images.build import build_and_push  # noqa: E402


def quiet() -> Reporter:
    return Reporter(say=lambda _t: None, warn=lambda t: print("  warning:", t))


def timed(fn: object, *args: object) -> float:
    t0 = time.monotonic()
    code = fn(*args)  # type: ignore[operator]
    assert code == 0, f"{fn} failed with {code}"
    return time.monotonic() - t0


def naive_rerun(tenant: Tenant, sandbox: Sandbox, host_of: dict[str, str]) -> float:
    """Restart every unit of every host in start order (what the seed does on every run), then wait
    until all report healthy."""
    bundle = render_tenant(tenant)
    t0 = time.monotonic()
    for hb in bundle.hosts:
        names = " ".join(f"{u.name}.service" for u in sorted(hb.units, key=lambda u: u.start_order))
        sandbox.run(host_of[hb.host], f"for u in {names}; do systemctl restart $u; done", timeout=600)
    wait_until_healthy(tenant)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the bench sandbox running")
    args = ap.parse_args()
    st = up(UpRequest(name="bench-install", hosts=4, oses=("debian12",), registry=True, s3=False))
    try:
        build_and_push(st, only=None)
        sb = Sandbox(st)
        inst = Path(tempfile.mkdtemp(prefix="omldeploy-bench-")) / "instances"
        aio = write_tenant(inst, "bench-aio", "aio", sb, [sb.host("h1")])
        ait = write_tenant(inst, "bench-ait", "ait", sb, [sb.host(h) for h in ("h2", "h3", "h4")])
        print(f"AIO install (cold pulls): {timed(converge, aio, 'install', quiet()):.1f} s")
        print(f"AIT install (cold pulls): {timed(converge, ait, 'install', quiet()):.1f} s")
        for tenant in (aio, ait):
            times = [timed(converge, tenant, "install", quiet()) for _ in range(args.runs)]
            print(f"{tenant.name} no-op re-run: median {statistics.median(times):.1f} s "
                  f"({', '.join(f'{t:.1f}' for t in times)}); 0 units restarted")
        host_of = {"omnileads_data": "h2", "omnileads_voice": "h3", "omnileads_app": "h4"}
        naive = [naive_rerun(ait, sb, host_of) for _ in range(args.runs)]
        units = sum(len(h.units) for h in render_tenant(ait).hosts)
        print(f"AIT naive re-run (restart all {units} units, wait healthy): median {statistics.median(naive):.1f} s "
              f"({', '.join(f'{t:.1f}' for t in naive)})")
    finally:
        if not args.keep:
            down("bench-install")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
