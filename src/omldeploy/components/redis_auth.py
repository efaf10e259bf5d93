"""Redis and Sentinel authentication (seed HA): one per-tenant password, and where each party finds it.

In the 8-host HA Redis leaves localhost: the app nodes serve it on their LAN address, HAProxy publishes
the master on the Redis VIP, and four Sentinels answer anyone on 26379. Without a password anyone on
that network could read or rewrite the dialer's state, or tell the Sentinels to fail over. So there
Redis runs with `requirepass` + `masterauth` and the Sentinels with `requirepass` + `sentinel auth-pass`,
all from the generated secret `redis_password` (render/material.py: part of the tenant's secret set, so
every file built from it is secret by construction and its forms are redacted).

The password never goes on a command line (`ps` shows argv to every user of the host):
- Redis reads it from an included file (`auth.conf`, 0600) copied into its volume, where the image's
  entrypoint hands /data to the user `redis` before it drops root (as the official image does);
- Sentinel reads it from its own config (0600, copied into its volume the same way);
- HAProxy's health check sends `AUTH ${REDIS_PASSWORD}`, expanded from its env file (0600), so
  haproxy.cfg itself stays free of secrets;
- clients get `REDIS_PASSWORD` in their env files (0600), the variable the images read.

AIO, AIT and two-node HA keep Redis without a password: there it binds localhost or the data host's LAN
address and is not published by HAProxy (components/redis bind_address).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omldeploy.components.context import Ctx

SECRET_KEY = "redis_password"
#: rendered on the host (root, 0600), copied into the oml_redis volume before each start
RENDERED_AUTH = "/etc/omnileads/redis/auth.conf"
#: where redis-server reads it inside the container (its volume)
CONTAINER_AUTH = "/data/auth.conf"


def enabled(ctx: Ctx) -> bool:
    """Whether this tenant's Redis requires a password: the replicated HA with Sentinel."""
    return ctx.tenant.layout.shape.value == "ha" and not ctx.tenant.layout.two_node


def password(ctx: Ctx) -> str:
    return ctx.secrets[SECRET_KEY]


def auth_conf(ctx: Ctx) -> str:
    """The file redis-server includes: its own password, and the one it gives its master as a replica
    (both nodes share one password, so either can be master after a failover)."""
    pw = password(ctx)
    return ("# Redis authentication, rendered by omldeploy (secret: keep 0600).\n"
            f"requirepass {pw}\nmasterauth {pw}\n")


def client_env(ctx: Ctx) -> list[tuple[str, str]]:
    """REDIS_PASSWORD for a client's env file when Redis requires one (nothing otherwise: an empty
    value would make some clients send an AUTH that Redis refuses)."""
    return [("REDIS_PASSWORD", password(ctx))] if enabled(ctx) else []
