"""`holder`: who holds a tenant's lock, read without taking it (a reader must never make a writer busy)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from omldeploy.state.lock import holder, tenant_lock


def _hold(folder: str, ready: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event) -> None:
    with tenant_lock(Path(folder), "t", "backup"):
        ready.set()
        go.wait(30)


def test_holder_names_another_process_then_nobody(tmp_path: Path) -> None:
    assert holder(tmp_path) is None
    assert not (tmp_path / ".omldeploy").exists()  # the probe creates nothing
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), ready, go))
    proc.start()
    try:
        assert ready.wait(30)
        found = holder(tmp_path)
        assert found is not None and found["action"] == "backup" and found["pid"] == proc.pid
        # the probe took no lock: the holder still holds it, and a second holder() sees the same
        assert holder(tmp_path) == found
    finally:
        go.set()
        proc.join(30)
    assert holder(tmp_path) is None
    with tenant_lock(tmp_path, "t", "install"):  # nothing left behind that blocks a writer
        assert holder(tmp_path) is not None
