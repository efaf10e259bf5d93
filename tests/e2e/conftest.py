"""Session fixtures for the e2e tier: one sandbox with hosts, registry, test images and S3.

Everything here is marked `e2e` and skipped (with the reason) when not running as root. The
sandbox is named `e2e` so it never collides with an operator's `default` sandbox; it is removed in
a finalizer unless OMLDEPLOY_E2E_KEEP=1. Host OSes come from OMLDEPLOY_E2E_HOSTS (comma list,
default: h1 debian12, h2 debian13 for test_sandbox; h3.. for the install tests, see test_install.py)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from omldeploy.sandbox import Host, S3Info, Sandbox, UpRequest, down, up
from omldeploy.sandbox.images.baselayer import ensure_base_layer
from omldeploy.sandbox.images.build import build_and_push
from omldeploy.sandbox.images.catalog import load_catalog
from omldeploy.sandbox.s3store import weed_binary

E2E_NAME = os.environ.get("OMLDEPLOY_E2E_NAME", "e2e")  # another name runs beside CI
# h1 h2 sandbox tests, h3 h4 AIO 12/13, h5-h7 AIT, h8 h9 cloud AIO + managed PostgreSQL, h10 h11 upgrades
# 12/13, h12-h14 cloud AIT (voice on 13)
DEFAULT_HOSTS = ("debian12,debian13,debian12,debian13,debian12,debian12,debian12,debian12,debian12,debian12,"
                 "debian13,debian12,debian13,debian12")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as e2e, and skip them all when not root."""
    here = os.path.dirname(__file__)
    # test_sandbox looks at every host of the session sandbox: it runs before test_install, whose hosts
    # are powered off when that module ends (they would idle under every later test)
    first = os.path.join(here, "test_sandbox.py")
    moved = [i for i in items if str(i.fspath) == first]
    if moved:
        rest = [i for i in items if str(i.fspath) != first]
        at = next((n for n, i in enumerate(rest) if str(i.fspath) == os.path.join(here, "test_install.py")),
                  len(rest))
        items[:] = rest[:at] + moved + rest[at:]
    skip = pytest.mark.skip(reason="e2e tests need root (network namespaces, overlay mounts, nspawn)")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.e2e)
            if os.geteuid() != 0:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The session sandbox, up with registry, S3 store and all test images pushed."""
    wanted = os.environ.get("OMLDEPLOY_E2E_HOSTS", DEFAULT_HOSTS)
    oses = tuple(x.strip() for x in wanted.split(",") if x.strip())
    if os.environ.get("OMLDEPLOY_E2E_KEEP") != "1":
        down(E2E_NAME)  # fresh hosts every session: nothing left over from an interrupted run
    # on a cold cache the image layers build while the hosts' root filesystems build
    with ThreadPoolExecutor(max_workers=1) as pool:
        layers = pool.submit(lambda: (ensure_base_layer(), weed_binary()))
        try:
            st = up(UpRequest(name=E2E_NAME, hosts=len(oses), oses=oses, registry=True, s3=True))
        finally:
            layers.result()
    try:
        build_and_push(st, only=None)
        yield Sandbox(st)
    finally:
        if os.environ.get("OMLDEPLOY_E2E_KEEP") != "1":
            down(E2E_NAME)


@pytest.fixture(scope="session")
def sandbox_hosts(sandbox: Sandbox) -> list[Host]:
    return sandbox.hosts


@pytest.fixture(scope="session")
def debian12_host(sandbox: Sandbox) -> Host:
    found = sandbox.hosts_by_os("debian12")
    if not found:
        pytest.skip("no debian12 host in OMLDEPLOY_E2E_HOSTS")
    return found[0]


@pytest.fixture(scope="session")
def debian13_host(sandbox: Sandbox) -> Host:
    found = sandbox.hosts_by_os("debian13")
    if not found:
        pytest.skip("no debian13 host in OMLDEPLOY_E2E_HOSTS")
    return found[0]


@pytest.fixture(scope="session")
def sandbox_registry(sandbox: Sandbox) -> str:
    """host:port of the sandbox registry (plain HTTP, trusted by the sandbox hosts)."""
    return sandbox.registry


@pytest.fixture(scope="session")
def sandbox_images(sandbox: Sandbox) -> dict[str, dict[str, str]]:
    """Catalog key -> {"default": ref, "alt": ref, "broken": ref} in the sandbox registry."""
    return {key: {"default": sandbox.image_ref(key), "alt": sandbox.image_ref(key, "alt"),
                  "broken": sandbox.image_ref(key, f"{entry.default}-broken")}
            for key, entry in load_catalog().items()}


@pytest.fixture(scope="session")
def sandbox_s3(sandbox: Sandbox) -> S3Info:
    """Endpoint and generated credentials of the sandbox S3 store."""
    return sandbox.s3
