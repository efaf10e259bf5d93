#!/usr/bin/env python3
"""Benchmark: AIO install, AIT install, no-op re-runs, and the naive "restart every unit" re-run.

Usage (root): PYTHONPATH=src python bench/install.py [--runs 3] [--keep] [--baseline REV]

With `--baseline REV` (a git revision), the same installs also run with that revision's code (a
detached worktree, same venv) on their own hosts, interleaved with this checkout's, and a table shows
both side by side; the breakdown of this checkout's AIT install follows (`omldeploy history`).

Boots a sandbox `bench` (4 Debian 12 hosts: 1 AIO + 3 AIT) with the test images, then measures:
  - AIO install wall time (cold: images pulled from the sandbox registry);
  - AIO and AIT no-op re-run (`install` again, nothing changed);
  - the same AIT no-op re-run done the naive way (the seed's behaviour: re-apply everything and
    restart every unit in matrix order, then wait until every unit is healthy again).
Figures are printed; nothing is asserted (tests assert behaviour, this measures it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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


def cli_install(src: Path, inst: Path, tenant: str) -> float:
    """One `omldeploy install` with the code under `src`, as an operator runs it; its wall time."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(inst), "install", "--tenant", tenant],
                          capture_output=True, text=True, env=env, timeout=1800)
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"{src}: install {tenant} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    return took


def side_by_side(rev: str, runs: int) -> int:
    """This checkout against `rev`, interleaved on 8 hosts of one sandbox (4 each: AIO + AIT)."""
    base = Path(tempfile.mkdtemp(prefix="omldeploy-baseline-")) / "wt"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), rev], check=True,
                   capture_output=True)
    st = up(UpRequest(name="bench-install", hosts=8, oses=("debian12",), registry=True, s3=False))
    try:
        build_and_push(st, only=None)
        sb = Sandbox(st)
        inst = Path(tempfile.mkdtemp(prefix="omldeploy-bench-")) / "instances"
        codes = {"baseline": base / "src", "this": ROOT / "src"}
        hosts = {"baseline": ("h1", "h2", "h3", "h4"), "this": ("h5", "h6", "h7", "h8")}
        for who, hs in hosts.items():
            write_tenant(inst, f"{who}-aio", "aio", sb, [sb.host(hs[0])])
            write_tenant(inst, f"{who}-ait", "ait", sb, [sb.host(h) for h in hs[1:]])
        figures: dict[str, dict[str, list[float]]] = {w: {} for w in codes}
        for what in ("aio", "ait"):
            for who, src in codes.items():  # cold: the images are pulled from the sandbox registry
                figures[who].setdefault(f"{what} install", []).append(cli_install(src, inst, f"{who}-{what}"))
        for _ in range(runs):
            for what in ("aio", "ait"):
                for who, src in codes.items():
                    figures[who].setdefault(f"{what} no-op", []).append(cli_install(src, inst, f"{who}-{what}"))
        print(f"\n| what | baseline {rev} | this checkout |\n|---|---|---|")
        for key in figures["this"]:
            b, t = figures["baseline"][key], figures["this"][key]
            print(f"| {key} | {statistics.median(b):.1f} s ({', '.join(f'{x:.1f}' for x in b)}) | "
                  f"{statistics.median(t):.1f} s ({', '.join(f'{x:.1f}' for x in t)}) |")
        for who in ("this",):
            proc = subprocess.run([sys.executable, "-m", "omldeploy", "--instances", str(inst), "history",
                                   "--tenant", f"{who}-ait", "--action", "install"],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
            first = proc.stdout.split("\n2026")[0] if proc.stdout else ""
            print(f"\nbreakdown of this checkout's cold AIT install:\n{first}")
    finally:
        down("bench-install")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the bench sandbox running")
    ap.add_argument("--baseline", metavar="REV", help="also run REV's code, side by side")
    args = ap.parse_args()
    if args.baseline:
        return side_by_side(args.baseline, args.runs)
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
