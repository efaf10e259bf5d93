#!/usr/bin/python3
"""Ansible module run ON a tenant host: omldeploy's nftables table (`firewall: nftables`).

Phases (the controller runs them as two separate Ansible runs, see ops/firewall.py):
  apply    add the controller's address (from this SSH connection) to the rendered script, check it
           with `nft -c -f`, arm the rollback timer, load it atomically with `nft -f`. No change when
           the same script is loaded and the table was not changed since. Check mode: `nft -c` only.
  confirm  sent over a NEW SSH connection: proves the controller still gets in under the new rules;
           disarms the rollback and keeps the ruleset for boot. When it never comes, the host puts its
           previous table back after `rollback_seconds`.
The logic is in module_utils/omldeploy_nft.py (standard library only).
"""

from __future__ import annotations

import re
import subprocess

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped,import-not-found,unused-ignore]
from ansible.module_utils.omldeploy_nft import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    FirewallError,
    apply,
    confirm,
    controller_address,
    with_controller,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tenant": {"type": "str", "required": True},
            "phase": {"type": "str", "required": True, "choices": ["apply", "confirm"]},
            "ruleset": {"type": "str", "default": ""},
            "rollback_seconds": {"type": "int", "default": 60},
            "token": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", p["tenant"]) or not 1 <= p["rollback_seconds"] <= 3600:
        module.fail_json(msg="bad tenant name or rollback_seconds")
    try:
        if p["phase"] == "apply":
            script = with_controller(p["ruleset"], controller_address())
            report = apply(script, p["rollback_seconds"], check_mode=module.check_mode)
        else:
            if not re.fullmatch(r"[0-9a-f]{32}", p["token"]):
                module.fail_json(msg="confirm needs the token of the apply")
            report = {"changed": False, "summary": "check mode"} if module.check_mode else confirm(p["token"])
    except (FirewallError, OSError, subprocess.TimeoutExpired) as exc:
        detail = str(exc)
        module.fail_json(msg=detail, report={"failed": True, "error": detail})
    module.exit_json(changed=bool(report.get("changed")), report=report)


if __name__ == "__main__":
    main()
