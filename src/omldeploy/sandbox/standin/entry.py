"""Dispatch `oml-sandbox-entry ROLE [ARGS...]` (the ENTRYPOINT of every sandbox test image)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from . import agi, apps, services
from .common import fail, set_role

ROLES: dict[str, Callable[[list[str]], int]] = {
    "postgres": services.postgres,
    "redis": services.redis,
    "nginx": services.nginx,
    "haproxy": services.haproxy,
    "lego": services.lego,
    "keepalived": services.keepalived,
    "minio": services.minio,
    "mc": services.mc,
    "node-exporter": lambda a: services.exporter("prometheus-node-exporter", a),
    "postgres-exporter": lambda a: services.exporter("prometheus-postgres-exporter", a),
    "redis-exporter": lambda a: services.exporter("prometheus-redis-exporter", a),
    "prometheus": services.prometheus,
    "omlapp": apps.omlapp,
    "websockets": apps.websockets,
    "asterisk": apps.asterisk,
    "kamailio": apps.kamailio,
    "rtpengine": apps.rtpengine,
    "redis2postgres": apps.redis2postgres,
    "fastagi": agi.fastagi,
    "astami": agi.astami,
    "loki": apps.loki,
    "promtail": apps.promtail,
    "manage": apps.record_manage,
    "missing": lambda a: fail(f"the sandbox has no stand-in for catalog image {' '.join(a)!r} "
                              "(see docs/sandbox.md)"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ROLES:
        set_role("entry")
        return fail(f"usage: oml-sandbox-entry ROLE [ARGS...]; roles: {', '.join(sorted(ROLES))}")
    role, args = argv[0], argv[1:]
    if os.environ.get("SANDBOX_UNHEALTHY", "") == "start" and role != "manage":
        set_role(role)
        return fail("SANDBOX_UNHEALTHY=start: refusing to start (deliberately broken image)")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return ROLES[role](args)
