"""Shared helpers for unit tests: tenants made from the bundled examples in tmp folders."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from omldeploy.inventory import Tenant, load_tenant

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "omldeploy" / "examples"


PLACEHOLDER = re.compile(r"CHANGE-ME-([a-z-]+)")


def fill_placeholders(text: str) -> str:
    """Replace the examples' CHANGE-ME-<what> placeholders (which validation refuses) with fixed strong
    values, as `omldeploy tenant new` does with random ones."""
    return PLACEHOLDER.sub(lambda m: f"unit-{m.group(1)}-Q7x9Lk2m4PzR", text)


def example(layout: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(fill_placeholders((EXAMPLES / f"inventory_{layout}.yml").read_text()))


MakeTenant = Callable[..., Tenant]


@pytest.fixture(autouse=True)
def _no_vault_source(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The vault password source is process-wide (the CLI sets it): every test starts without one."""
    from omldeploy.inventory import vaultsource

    monkeypatch.delenv(vaultsource.ENV, raising=False)
    vaultsource.configure()
    yield
    vaultsource.configure()


@pytest.fixture
def make_tenant(tmp_path: Path) -> MakeTenant:
    """make_tenant("aio", vars={...}, name="t1") -> Tenant loaded from a tmp instances folder."""

    def make(layout: str, *, vars: dict | None = None, drop: tuple[str, ...] = (), name: str = "t1",  # type: ignore[type-arg]
             hosts: dict | None = None) -> Tenant:  # type: ignore[type-arg]
        data = example(layout)
        for k in drop:
            data["all"]["vars"].pop(k, None)
        data["all"]["vars"].update(vars or {})
        for host, hv in (hosts or {}).items():
            data["all"]["hosts"][host].update(hv)
        folder = tmp_path / "instances" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        return load_tenant(folder, name)

    return make
