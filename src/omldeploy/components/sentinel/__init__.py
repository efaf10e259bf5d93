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

Each Sentinel waits a little longer than the previous one before it calls the master down
(`down-after-milliseconds` 3000, 3400, 3800, 4200 ms in host order). A clean stop of the master
(`systemctl stop redis`, a restart) closes every Sentinel's link at the same instant, so with one shared
value all four reached `+sdown` within ~50 ms, and two or three of them started competing elections in
the same epoch: no majority (`-failover-abort-not-elected`), the next try only after twice the
failover-timeout, and a Redis outage of 18-22 s instead of ~6 s (e2e tests/e2e/ha/test_ha_2_redis.py).
Staggered, the second Sentinel to see the master down is the first with a quorum (it asks the others
at once); it requests votes before the first one's next periodic question (1 s later), and every
Sentinel that voted for it stays out of that failover. The cost is 0.4 s of detection.
"""

from __future__ import annotations

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

RENDERED = "/etc/omnileads/sentinel.conf"
#: down-after-milliseconds of the first Sentinel (the seed's value) and the step between Sentinels
DOWN_AFTER_MS = 3000
DOWN_AFTER_STEP_MS = 400

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
            ("SENTINEL_DOWN_AFTER", str(self.down_after_ms(ctx))),
            ("SENTINEL_FAILOVER", "6000"),
        ]

    def down_after_ms(self, ctx: Ctx) -> int:
        """This Sentinel's `down-after-milliseconds`: staggered by its rank among the tenant's Sentinels
        (module docstring: a shared value made simultaneous elections split the vote)."""
        names = [h.name for h in ctx.hosts_running("sentinel")]
        rank = names.index(ctx.host.name) if ctx.host.name in names else 0
        return DOWN_AFTER_MS + DOWN_AFTER_STEP_MS * rank

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
        content = self.template("sentinel.conf.j2", ctx, redis_password=pw, down_after=self.down_after_ms(ctx))
        return [ConfigFile(RENDERED, content, 0o600, secret=bool(pw))]


COMPONENT = Sentinel()
