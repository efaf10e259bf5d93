#!/usr/bin/env python3
"""Benchmark: `fleet status` and `fleet drift` over many tenants, and how they scale with --parallel.

Usage: PYTHONPATH=src python bench/fleet.py [--tenants 1000] [--latency 1.5] [--latency-tenants 100]
                                            [--parallel 1,8,32] [--real-instances DIR]

1. Controller side, 1,000 tenants (AIO and AIT inventories with random passwords, 1 in 20 with a
   problem): every inventory loaded, rendered, its steps built, the simulated hosts' reports parsed and
   judged (omldeploy/sandbox/simulated.py answers instantly, as the host module would). This is the
   per-tenant cost that no parallelism on the hosts' side removes.
2. With simulated host latency (`--latency` seconds per tenant run, a real check-mode run's wall time)
   over `--latency-tenants`: the baseline is one tenant after another (an operator's loop over
   `omldeploy status`), side by side with --parallel N.
   Also `fleet upgrade --check`, the rollout's plan over the whole fleet.
3. `--real-instances DIR`: the real `fleet status` over existing tenants (e.g. a kept e2e sandbox's), and
   the baseline loop of `omldeploy status --tenant T` processes, one after another.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from omldeploy.cli.main import main  # noqa: E402
from omldeploy.cli.tenants import example_text, with_random_secrets  # noqa: E402
from omldeploy.inventory import load_tenant  # noqa: E402
from omldeploy.ops import drift as drift_op  # noqa: E402
from omldeploy.ops import fleet as fleet_op  # noqa: E402
from omldeploy.render.build import render_tenant  # noqa: E402
from omldeploy.sandbox.simulated import Condition, SimulatedHosts  # noqa: E402


def make_fleet(root: Path, n: int) -> dict[str, Condition]:
    """n tenant folders (4 in 5 AIO, 1 in 5 AIT), each on its own addresses; 1 in 20 with a problem."""
    rng = random.Random(7)
    conditions: dict[str, Condition] = {}
    for i in range(n):
        layout = "ait" if i % 5 == 4 else "aio"
        data = yaml.safe_load(with_random_secrets(example_text(layout)))
        for k, hv in enumerate(data["all"]["hosts"].values()):
            ip = f"10.{i // 250}.{i % 250}.{10 + k}"
            hv["ansible_host"] = hv["omni_ip_lan"] = ip
        name = f"t{i:04d}"
        folder = root / name
        folder.mkdir(parents=True)
        inv = folder / "inventory.yml"
        inv.write_text(yaml.safe_dump(data, sort_keys=False))
        inv.chmod(0o600)
        roll = rng.random()
        if roll < 0.02:
            conditions[name] = Condition(stopped=("redis",))
        elif roll < 0.035:
            conditions[name] = Condition(unreachable=True)
        elif roll < 0.05:
            conditions[name] = Condition(backup_age_s=5 * 86400)
    return conditions


def quiet_main(argv: list[str]) -> tuple[int, float]:
    t0 = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return code, time.monotonic() - t0


def controller_side(root: Path, conditions: dict[str, Condition], parallels: list[int]) -> None:
    n = len(fleet_op.tenant_folders(root, "*"))
    t0 = time.monotonic()
    for folder in fleet_op.tenant_folders(root, "*"):
        render_tenant(load_tenant(folder, folder.name))  # the first render makes each tenant's CA and keys
    first = time.monotonic() - t0
    print(f"\n1. controller side, {n} tenants, hosts answering instantly")
    print(f"   first render of every tenant (CA and server keys made once): {first:.1f} s "
          f"({first / n * 1000:.0f} ms/tenant)")
    print(f"   {'verb':<14}{'--parallel':>11}{'wall s':>9}{'ms/tenant':>11}{'exit':>6}")
    for par in parallels:
        sim = SimulatedHosts(conditions)
        fleet_op.real_runner = sim  # type: ignore[assignment]
        code, wall = quiet_main(["fleet", "status", "--instances", str(root), "--parallel", str(par), "--json"])
        print(f"   {'fleet status':<14}{par:>11}{wall:>9.1f}{wall / n * 1000:>11.1f}{code:>6}   ({sim.runs} runs)")
    for par in parallels:
        sim = SimulatedHosts(conditions)
        drift_op.run_steps = lambda t, steps, sim=sim, **kw: sim(t, steps, int(kw.get("timeout") or 60))  # type: ignore[assignment]
        code, wall = quiet_main(["fleet", "drift", "--instances", str(root), "--parallel", str(par), "--json"])
        print(f"   {'fleet drift':<14}{par:>11}{wall:>9.1f}{wall / n * 1000:>11.1f}{code:>6}   ({sim.runs} runs)")


def rollout_plan(root: Path) -> None:
    """`fleet upgrade --check`: every inventory loaded, overlaps checked across the whole fleet once,
    targets computed, waves cut. Its cost is paid once per rollout, before the first tenant starts."""
    n = len(fleet_op.tenant_folders(root, "*"))
    code, wall = quiet_main(["fleet", "upgrade", "--instances", str(root), "--release", "1.27.1", "--check",
                             "--json"])
    print(f"   {'upgrade --check':<14}{'-':>11}{wall:>9.1f}{wall / n * 1000:>11.1f}{code:>6}   "
          "(plan: load, overlaps across the fleet, waves)")


def with_latency(root: Path, conditions: dict[str, Condition], latency: float, count: int,
                 parallels: list[int]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    names = [f.name for f in fleet_op.tenant_folders(root, "*")][:count]
    slow = {n: Condition(**{**vars(conditions.get(n, Condition())), "latency_s": latency}) for n in names}
    print(f"\n2. {len(names)} tenants, each host run taking {latency} s (simulated SSH + module time)")
    print(f"   {'mode':<34}{'wall s':>9}{'s/tenant':>10}{'speed-up':>10}")
    base = None
    for par in parallels:
        opts = fleet_op.Options(parallel=par, runner=SimulatedHosts(slow))
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=par) as pool:
            list(pool.map(lambda n, opts=opts: fleet_op.inspect_tenant(root / n, opts), names))
        wall = time.monotonic() - t0
        base = base or wall
        label = "one after another (baseline)" if par == 1 else f"fleet status --parallel {par}"
        print(f"   {label:<34}{wall:>9.1f}{wall / len(names):>10.2f}{base / wall:>9.1f}x")


def real(instances: Path, parallels: list[int]) -> None:
    names = [f.name for f in fleet_op.tenant_folders(instances, "*")]
    print(f"\n3. real hosts: {len(names)} tenant(s) in {instances}")
    t0 = time.monotonic()
    for n in names:
        subprocess.run([sys.executable, "-m", "omldeploy", "status", "--instances", str(instances), "--tenant", n],
                       capture_output=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    loop = time.monotonic() - t0
    print(f"   baseline: `omldeploy status --tenant T` for each, one after another: {loop:.1f} s "
          f"({loop / max(len(names), 1):.1f} s/tenant; status only, no drift, no backups)")
    for par in parallels:
        code, wall = quiet_main(["fleet", "status", "--instances", str(instances), "--parallel", str(par), "--json"])
        print(f"   fleet status --parallel {par}: {wall:.1f} s ({wall / max(len(names), 1):.1f} s/tenant; status, "
              f"drift and backups), exit {code}")


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=1.5)
    ap.add_argument("--latency-tenants", type=int, default=100)
    ap.add_argument("--parallel", default="1,8,32")
    ap.add_argument("--real-instances", type=Path)
    args = ap.parse_args()
    parallels = [int(x) for x in args.parallel.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = Path(tmp) / "instances"
        t0 = time.monotonic()
        conditions = make_fleet(root, args.tenants)
        print(f"fleet of {args.tenants} tenants written in {time.monotonic() - t0:.1f} s "
              f"({len(conditions)} with a problem)")
        controller_side(root, conditions, parallels)
        rollout_plan(root)
        with_latency(root, conditions, args.latency, args.latency_tenants, parallels)
    if args.real_instances:
        real(args.real_instances, parallels)


if __name__ == "__main__":
    run()
