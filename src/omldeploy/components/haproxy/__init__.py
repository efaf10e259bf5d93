"""HAProxy (HA): HTTPS balancing over both app nodes and routing of Redis clients to the master.

Terminates TLS with the tenant's own certificate (the seed shipped one bundled key to everyone and
ignored `certs: custom`).

The official image (>= 2.4) runs as the non-root user `haproxy`, which may not bind 80/443. With host
networking `--sysctl net.ipv4.ip_unprivileged_port_start` is refused (it would change the host's network
namespace), so the unit grants that one capability instead; and the certificate directory is handed to
the image's user (`U`), since the key files are 0600.

Redis is published on the LAN address and the Redis VIP only, and its health check authenticates
(components/redis_auth.py) with REDIS_PASSWORD from the env file, so haproxy.cfg holds no secret.
"""

from __future__ import annotations

import ipaddress

from omldeploy.components import redis_auth
from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx
from omldeploy.components.nginx import AGENT_PORT


class HAProxy(Component):
    name = "haproxy"
    description = "HAProxy load balancer"
    image = "haproxy"
    container = "oml-haproxy-server"
    env_file = "/etc/default/haproxy.env"
    roles = ("haproxy",)
    groups = ("haproxy",)
    start_order = 55
    capabilities = ("NET_BIND_SERVICE",)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return redis_auth.client_env(ctx)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/etc/omnileads/haproxy.cfg", "/usr/local/etc/haproxy/haproxy.cfg", "ro"),
                Volume("/etc/omnileads/certs", "/etc/haproxy/certs", "ro,U")]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(self._app_port(ctx), purpose="HTTPS", reach="public"),
                Port(80, purpose="HTTP, redirected to HTTPS", reach="public"), Port(6379, purpose="Redis master"),
                Port(8404, purpose="metrics", reach="monitoring")]

    def _app_port(self, ctx: Ctx) -> int:
        return int(ctx.host.vars.get("app_port", 443))

    def health(self, ctx: Ctx) -> Health:
        return Health("tcp", host=ctx.lan, port=self._app_port(ctx))

    def redis_binds(self, ctx: Ctx) -> list[tuple[str, bool]]:
        """(address, foreign) pairs the Redis frontend binds: this node's LAN address, and the address
        clients use (`redis_host`, the VIP) when it is an IP of its own; foreign: it may not be on this
        node (the VIP is on one HAProxy node at a time)."""
        binds = [(ctx.lan, False)]
        entry = ctx.facts.redis_host
        try:
            ipaddress.IPv4Address(entry)
        except ValueError:
            return binds  # a name: it resolves to an address this frontend does not own
        if entry != ctx.lan:
            binds.append((entry, True))
        return binds

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        apps = sorted(ctx.tenant.with_role("app"), key=lambda h: h.ha_role != "main")
        verify = ctx.tenant.settings.text("certs") == "selfsigned"
        content = self.template("haproxy.cfg.j2", ctx, apps=apps, app_port=self._app_port(ctx),
                                verify=verify, agent_port=AGENT_PORT, redis_binds=self.redis_binds(ctx),
                                redis_auth=redis_auth.enabled(ctx))
        return [ConfigFile("/etc/omnileads/haproxy.cfg", content, 0o644)]


COMPONENT = HAProxy()
