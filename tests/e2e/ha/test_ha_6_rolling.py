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
from .probes import Probes, more_answers

APP_STACK = ("omnileads_version", "nginx_version", "websockets_version", "kamailio_version")


def rolling(tenant: Tenant, sb: Sandbox, instances: Path, which: str) -> tuple[float, Probes]:
    versions = tags(which)
    set_versions(tenant, {k: versions[k] for k in APP_STACK})
    with Probes(tenant, sb, https=True, pg=False) as p:
        more_answers(p.https)
        t0 = time.monotonic()
        proc = cli(instances, "upgrade", "--tenant", "ha", "--no-backup")
        took = time.monotonic() - t0
        more_answers(p.https)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    rec = ledger.read(tenant.folder)[-1]
    assert rec.action == "upgrade" and rec.outcome == "ok", rec
    assert {"app_1:nginx", "app_2:nginx", "app_1:omnileads", "app_2:omnileads"} <= set(rec.restarted), rec.restarted
    return took, p


def test_a_rolling_upgrade_of_the_app_stack_fails_no_request(ha: tuple[Tenant, float, str], ha_sandbox: Sandbox,
                                                             instances: Path) -> None:
    tenant, sb = ha[0], ha_sandbox
    figures = []
    for which in ("B",):  # one way: the broken-tag test below starts from the upgraded stack
        took, p = rolling(tenant, sb, instances, which)
        figures.append(f"to {which}: {took:.0f} s, {p.https.summary()}")
        assert p.https.attempts > 100 and p.https.failed == 0, p.https.summary()
    print("rolling upgrade of the app stack through the web VIP: " + "; ".join(figures))


def test_a_broken_tag_stops_at_the_first_app_node_and_rolls_back_while_the_other_serves(
        ha: tuple[Tenant, float, str], ha_sandbox: Sandbox, instances: Path) -> None:
    """The web app's new tag crash-loops: the first app node (the passive one) fails its health gate while
    drained, the other node is never touched and keeps serving, and the automatic rollback puts the
    first one back, one side at a time."""
    tenant, sb = ha[0], ha_sandbox
    a = tags("A")
    broken = a["omnileads_version"] + "-broken"
    set_versions(tenant, {"omnileads_version": broken})
    with Probes(tenant, sb, https=True, pg=False) as p:
        more_answers(p.https)
        proc = cli(instances, "upgrade", "--tenant", "ha", "--no-backup")
        more_answers(p.https)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "rolled back" in out, out[-5000:]
    records = ledger.read(tenant.folder)
    failed = next(r for r in reversed(records) if r.action == "upgrade")
    touched = {u.split(":")[0] for u in failed.restarted}
    assert len(touched & {"app_1", "app_2"}) <= 1, failed.restarted  # the gate stopped at the first app node
    print(f"broken omlapp tag on HA: upgrade stopped at {sorted(touched)}, rolled back; {p.https.summary()}")
    assert p.https.failed == 0, p.https.summary()
    assert broken not in tenant.inventory_path.read_text()
