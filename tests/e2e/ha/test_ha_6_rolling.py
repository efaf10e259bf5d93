"""A rolling upgrade of the app stack on the 8-host cluster, with HTTPS through the web VIP every 100 ms:
each app node is drained from HAProxy (its agent answers `maint`) before anything restarts on it, and
put back once healthy, one node at a time, so no request fails. Then back to the installed versions.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.tenants import set_versions, tags

from omldeploy.inventory import Tenant
from omldeploy.sandbox import Sandbox
from omldeploy.state import ledger

from .common import cli
from .probes import Probes

APP_STACK = ("omnileads_version", "nginx_version", "websockets_version", "kamailio_version")


def rolling(tenant: Tenant, sb: Sandbox, instances: Path, which: str) -> tuple[float, Probes]:
    versions = tags(which)
    set_versions(tenant, {k: versions[k] for k in APP_STACK})
    with Probes(tenant, sb, https=True, pg=False) as p:
        time.sleep(1.0)
        t0 = time.monotonic()
        proc = cli(instances, "upgrade", "--tenant", "ha", "--no-backup")
        took = time.monotonic() - t0
        time.sleep(1.0)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    rec = ledger.read(tenant.folder)[-1]
    assert rec.action == "upgrade" and rec.outcome == "ok", rec
    assert {"app_1:nginx", "app_2:nginx", "app_1:omnileads", "app_2:omnileads"} <= set(rec.restarted), rec.restarted
    return took, p


def test_a_rolling_upgrade_of_the_app_stack_fails_no_request(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox,
                                                             instances: Path) -> None:
    tenant, sb = ha[0], ha_sandbox
    figures = []
    for which in ("B", "A"):
        took, p = rolling(tenant, sb, instances, which)
        figures.append(f"to {which}: {took:.0f} s, {p.https.summary()}")
        assert p.https.attempts > 100 and p.https.failed == 0, p.https.summary()
    print("rolling upgrade of the app stack through the web VIP: " + "; ".join(figures))
