"""What the tenant's Prometheus says of its scrape targets, for `omldeploy status` (standard library only).

A unit can be active and healthy while Prometheus cannot reach it (a wrong bind address, a firewall
rule): only Prometheus's own view, `/api/v1/targets`, tells. Shipped by Ansible with the host module.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

#: a reply larger than this is not from our Prometheus (a tenant has a few dozen targets)
MAX_REPLY = 4 << 20


def targets(host: str, port: int, timeout: float = 5.0) -> dict[str, Any]:
    """{"address", "up", "down": [{"host", "component", "error"}], "unknown"} or {"address", "error"}."""
    address = f"{host}:{port}"
    url = f"http://{address}/api/v1/targets?state=active"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(MAX_REPLY + 1)
    except (OSError, urllib.error.URLError) as exc:
        return {"address": address, "error": str(exc)}
    if len(body) > MAX_REPLY:
        return {"address": address, "error": "reply too large"}
    try:
        active = json.loads(body)["data"]["activeTargets"]
    except (ValueError, KeyError, TypeError):
        return {"address": address, "error": "not a Prometheus targets reply"}
    return summarize(address, active)


def summarize(address: str, active: list[dict[str, Any]]) -> dict[str, Any]:
    up, unknown, down = 0, 0, []
    for t in active:
        health = t.get("health")
        if health == "up":
            up += 1
        elif health == "down":
            labels = t.get("labels") or {}
            down.append({"host": str(labels.get("host", "")), "component": str(labels.get("component", "")),
                         "error": str(t.get("lastError", ""))[:300]})
        else:
            unknown += 1  # not scraped yet: a target Prometheus has only just been told about
    return {"address": address, "up": up, "down": down, "unknown": unknown}
