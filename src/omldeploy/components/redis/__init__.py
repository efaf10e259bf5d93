"""Redis (data/AIO host; in HA a main/replica pair on the app nodes behind HAProxy + Sentinel).

In HA the inventory's role (main/replica) is only where a new cluster starts. After a failover the
other node is master, and a node restarted with its inventory role would be a second master that
HAProxy routes writes to until Sentinel demotes it, losing them. So in HA the role is decided before
every start, by systemd on the host (`redis_role.py`, ExecStartPre): it asks the Sentinels for the
current master (falling back to the peers' own Redis, then to the inventory) and writes ROLE/MAIN into
a runtime env file the container reads after the rendered one. The rendered env file carries no role,
so a re-run sees no change after a failover and restarts nothing.

In HA Redis also requires a password (components/redis_auth.py): `auth.conf` (0600) is copied into the
volume before every start and included with `--include`, so the secret is on no command line.
"""

from __future__ import annotations

from importlib import resources

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx

ROLE_SCRIPT = "/etc/omnileads/redis/redis_role.py"
ROLE_ENV = "/run/omnileads/redis-role.env"
#: longest wait for a failover of this node the Sentinels are busy with: failover-timeout (6 s) twice
SETTLE_SECONDS = 12
#: before every start (systemd), whoever starts it: put the rendered auth.conf into the volume, where the
#: image's entrypoint hands it to the user `redis` (a root-owned 0600 bind mount it could not read)
COPY_AUTH = ("podman volume exists oml_redis || podman volume create oml_redis >/dev/null || exit 1; "
             "d=$(podman volume inspect --format '{{.Mountpoint}}' oml_redis) || exit 1; "
             f'install -m 0600 {redis_auth.RENDERED_AUTH} "$d/auth.conf.tmp" && '
             'mv -f "$d/auth.conf.tmp" "$d/auth.conf"')


def bind_address(ctx: Ctx) -> str:
    """AIO and each node of two-node HA keep Redis on localhost (only that node's services use it);
    AIT/HA bind the host's own LAN address (never a VIP)."""
    local = ctx.tenant.layout.shape.value == "aio" or ctx.tenant.layout.two_node
    return "localhost" if local else ctx.lan


def _ha(ctx: Ctx) -> bool:
    """Replicated Redis with Sentinel: the seed's 8-host HA. Two nodes cannot hold a Sentinel majority
    when one of them is gone, so there (as in HEAD) each node runs a standalone Redis, which the HA
    transition refills from the database on the node that takes the VIP."""
    return ctx.tenant.layout.shape.value == "ha" and not ctx.tenant.layout.two_node


class Redis(Component):
    name = "redis"
    description = "Redis"
    image = "redis"
    container = "oml-redis-server"
    env_file = "/etc/default/redis.env"
    roles = ("aio", "data")
    groups = ("redis", "restart")
    start_order = 30

    def placed(self, ctx: Ctx) -> bool:
        if _ha(ctx):
            return "app" in ctx.host.roles
        return super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        # HA: ROLE/MAIN come from ROLE_ENV, decided at each start (module docstring)
        return [("REDISGEARS_VERSION", "1.0.9"), ("BIND_IP", bind_address(ctx))]

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("oml_redis", "/data")]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(6379, purpose="Redis")]

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=bind_address(ctx), port=6379)

    def args(self, ctx: Ctx) -> list[str]:
        # options after the image's own (bind, replicaof): the include adds requirepass/masterauth
        return ["--include", redis_auth.CONTAINER_AUTH] if redis_auth.enabled(ctx) else []

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if not _ha(ctx):
            return []
        script = resources.files("omldeploy.components.redis").joinpath("redis_role.py").read_text()
        files = [ConfigFile(ROLE_SCRIPT, script, 0o755)]
        if redis_auth.enabled(ctx):
            files.append(ConfigFile(redis_auth.RENDERED_AUTH, redis_auth.auth_conf(ctx), 0o600, secret=True))
        return files

    def exec_start_pre(self, ctx: Ctx) -> list[list[str]]:
        if not _ha(ctx):
            return []
        argv = ["/usr/bin/python3", ROLE_SCRIPT, "--out", ROLE_ENV, "--self", ctx.lan,
                "--default-main", ctx.tenant.settings.text("redis_ip_main"),
                "--settle", str(SETTLE_SECONDS)]
        if redis_auth.enabled(ctx):
            # the script reads `requirepass` from the rendered file (root on the host): no argv secret
            argv += ["--auth-file", redis_auth.RENDERED_AUTH]
        for h in ctx.hosts_running("redis"):
            if h.lan_ip != ctx.lan:
                argv += ["--peer", h.lan_ip]
        for h in ctx.hosts_running("sentinel"):
            argv += ["--sentinel", f"{h.lan_ip}:26379"]
        if redis_auth.enabled(ctx):
            return [["/bin/sh", "-c", COPY_AUTH], argv]
        return [argv]

    def runtime_env_files(self, ctx: Ctx) -> list[str]:
        return [ROLE_ENV] if _ha(ctx) else []


COMPONENT = Redis()
