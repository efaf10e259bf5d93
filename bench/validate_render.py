#!/usr/bin/env python3
"""Benchmark: validate + render N generated tenants (default 1,000), in one process.

Usage: PYTHONPATH=src python bench/validate_render.py [--tenants 1000] [--keep DIR]

Tenants cycle through the four example layouts with distinct names and addresses. The first pass
includes generating each tenant's CA, certificate and secrets; the second pass is a re-render.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from omldeploy.cli.tenants import with_random_secrets  # noqa: E402
from omldeploy.inventory import load_tenant  # noqa: E402
from omldeploy.render.build import render_tenant  # noqa: E402

LAYOUTS = ("aio", "ait", "cloud", "ha")


def make(root: Path, i: int) -> Path:
    layout = LAYOUTS[i % 4]
    # placeholders replaced as `omldeploy tenant new` does (validation refuses them)
    example = (ROOT / "src/omldeploy/examples" / f"inventory_{layout}.yml").read_text()
    data = yaml.safe_load(with_random_secrets(example))
    a, b = divmod(i, 250)
    # HA keeps its example addresses (VIPs and redis_ip_main refer to them); others get unique ones.
    for n, host in enumerate(data["all"].get("hosts", {}).values()):
        host["omni_ip_lan"] = f"10.{a}.{b}.{10 + n}"
        if not str(host.get("ansible_host", "")).startswith("203."):
            host["ansible_host"] = host["omni_ip_lan"]
    if layout != "ha":  # the examples' hostvars expressions are fine, but keep the data small
        for key in ("data_host", "voice_host", "application_host"):
            data["all"]["vars"].pop(key, None)
    data["all"]["vars"]["postgres_password"] = f"pw-{i:05d}-secret"
    folder = root / f"tenant{i:05d}-{layout}"
    folder.mkdir(parents=True)
    (folder / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def run(folders: list[Path]) -> list[float]:
    times = []
    for folder in folders:
        t0 = time.perf_counter()
        bundle = render_tenant(load_tenant(folder))
        assert bundle.hosts
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="omldeploy-bench-"))
    t0 = time.perf_counter()
    folders = [make(root, i) for i in range(args.tenants)]
    print(f"generated {len(folders)} tenants in {time.perf_counter() - t0:.1f}s under {root}")
    for label in ("first render (generates CA, certificate, secrets)", "re-render"):
        t0 = time.perf_counter()
        times = run(folders)
        wall = time.perf_counter() - t0
        p95 = sorted(times)[int(len(times) * 0.95)]
        print(f"{label}: {wall:.1f}s for {len(times)} tenants; per tenant median "
              f"{statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
