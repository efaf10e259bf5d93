"""Redis Sentinel (HA): both voice nodes, the backup app node and the main haproxy node (quorum 2).

Runs `redis-sentinel /data/sentinel.conf` from the Redis image, as the official image runs Sentinel
(the seed pulled one image and ran another). Sentinel rewrites its config at runtime with what it learns
(epoch, current master, replicas, other sentinels), so that file lives in the `oml_sentinel` volume and
survives restarts. A hook before each start seeds it from the rendered file only when it is missing or
the rendered file changed (a changed setting starts over; a plain restart keeps the learned state). The
rendered file on the host never changes at runtime, so the next run sees no false "changed".

The config carries the tenant's Redis password (components/redis_auth.py): `requirepass` for clients
and the other Sentinels, `sentinel auth-pass` for the Redis nodes. So it is 0600, on the host and in
the volume (the copy keeps the mode).
"""

from __future__ import annotations

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

RENDERED = "/etc/omnileads/sentinel.conf"
#: copy the rendered config into the volume when absent or when the rendered file changed since the last
#: copy (kept beside it as sentinel.rendered); runs on the host, no container needed
SEED = ("podman volume exists oml_sentinel || podman volume create oml_sentinel >/dev/null || exit 1; "
        "d=$(podman volume inspect --format '{{.Mountpoint}}' oml_sentinel) || exit 1; "
        f'if [ ! -s "$d/sentinel.conf" ] || ! cmp -s {RENDERED} "$d/sentinel.rendered"; then '
        f'install -m 0600 {RENDERED} "$d/sentinel.conf.tmp" && mv "$d/sentinel.conf.tmp" "$d/sentinel.conf" && '
        f'install -m 0600 {RENDERED} "$d/sentinel.rendered"; fi')


class Sentinel(Component):
    name = "sentinel"
    description = "Redis Sentinel"
    image = "redis"
    container = "oml-sentinel-server"
    env_file = "/etc/default/sentinel.env"
    groups = ("redis", "sentinel")
    start_order = 35

    def placed(self, ctx: Ctx) -> bool:
        if ctx.tenant.layout.shape.value != "ha" or ctx.tenant.layout.two_node:
            return False
        h = ctx.host
        return ("voice" in h.roles or ("app" in h.roles and h.ha_role == "backup")
                or ("haproxy" in h.roles and h.ha_role == "main"))

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return [
            ("BIND_IP", ctx.lan),
            ("MAIN", ctx.tenant.settings.text("redis_ip_main")),
            ("SENTINEL_QUORUM", "2"),
            ("SENTINEL_DOWN_AFTER", "3000"),
            ("SENTINEL_FAILOVER", "6000"),
        ]

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("oml_sentinel", "/data")]

    def args(self, ctx: Ctx) -> list[str]:
        return ["redis-sentinel", "/data/sentinel.conf"]

    def pre_start(self, ctx: Ctx) -> list[str]:
        return [SEED]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(26379, purpose="Sentinel")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan, port=26379)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        pw = redis_auth.password(ctx) if redis_auth.enabled(ctx) else ""
        content = self.template("sentinel.conf.j2", ctx, redis_password=pw)
        return [ConfigFile(RENDERED, content, 0o600, secret=bool(pw))]


COMPONENT = Sentinel()
