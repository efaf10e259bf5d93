"""Integration tier: the host side of `firewall: nftables` (module_utils/omldeploy_nft.py) against the
real kernel, in a private network namespace (`unshare --net`: its own nftables, nothing of this
machine's is touched).

What an operator relies on: a ruleset that is never confirmed (the controller was shut out) is undone
by the host itself, back to exactly the table it had before; a confirmed one stays; the same ruleset
applied twice is "no change"; a ruleset nft refuses changes nothing. The rollback timer here is the
detached-process one (the namespace has no systemd); the e2e test runs the systemd one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "src" / "omldeploy" / "apply" / "ansible" / "module_utils"

RULESET = """table inet omldeploy
delete table inet omldeploy
table inet omldeploy {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport %d accept
\t}
}
"""

SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    import omldeploy_nft as nft
    state = sys.argv[2]
    out = {}

    def wait(pred, timeout=20.0):
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                return False
            time.sleep(0.2)
        return True

    ruleset = %(ruleset)r
    # 0. check mode: nft -c only, nothing loaded and nothing written
    import os
    r = nft.apply(ruleset %% 1111, 2, state=state, check_mode=True)
    out["check"] = r["changed"] and nft.listing() is None and not os.path.exists(state)
    # 1. first apply (no table before), never confirmed: the table must go away again
    r = nft.apply(ruleset %% 1111, 2, state=state, launcher="detached")
    out["first"] = r["changed"] and "1111" in (nft.listing() or "")
    out["first_rolled_back"] = wait(lambda: nft.listing() is None)
    # 2. apply + confirm: stays past the delay; the same ruleset again is no change
    r = nft.apply(ruleset %% 2222, 2, state=state, launcher="detached")
    nft.confirm(r["token"], state=state, persist=False)
    time.sleep(3)  # past the 2 s delay: the (now void) timer fired and must have done nothing
    out["confirmed_kept"] = "2222" in (nft.listing() or "")
    out["again"] = nft.apply(ruleset %% 2222, 2, state=state, launcher="detached")["changed"]
    # 3. a new ruleset over the confirmed one, never confirmed: back to exactly the confirmed table
    before = nft.listing()
    r = nft.apply(ruleset %% 3333, 2, state=state, launcher="detached")
    out["third_loaded"] = "3333" in (nft.listing() or "")
    out["third_restored"] = wait(lambda: nft.listing() == before)
    try:
        nft.confirm(r["token"], state=state, persist=False)
        out["late_confirm"] = "accepted"
    except nft.FirewallError as exc:
        out["late_confirm"] = str(exc)
    # 4. the table changed behind our back (restored by the timer): the same script is applied again
    out["reapplied"] = nft.apply(ruleset %% 2222, 2, state=state, launcher="detached")["changed"]
    # 5. a ruleset nft refuses: error, table unchanged
    now = nft.listing()
    try:
        nft.apply("table inet omldeploy { chain input { bogus } }", 2, state=state, launcher="detached")
        out["bad"] = "accepted"
    except nft.FirewallError as exc:
        out["bad"] = str(exc)
    out["bad_unchanged"] = nft.listing() == now
    print(json.dumps(out))
""")


def test_unconfirmed_ruleset_is_rolled_back_and_confirmed_one_stays(tmp_path: Path) -> None:
    if not shutil.which("nft"):
        pytest.skip("nft missing (apt-get install nftables; .ci/e2e-setup.sh installs it)")
    if not shutil.which("unshare"):
        pytest.skip("unshare missing (util-linux)")
    code = SCRIPT % {"ruleset": RULESET}
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", code, str(UTILS), str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["check"], out
    assert out["first"] and out["first_rolled_back"], out
    assert out["confirmed_kept"], out
    assert out["again"] is False, out
    assert out["third_loaded"] and out["third_restored"], out
    assert "too late" in out["late_confirm"], out
    assert out["reapplied"] is True, out
    assert "nft -c refused" in out["bad"] and out["bad_unchanged"], out
