"""nginx: the HTTPS/WSS entry point on the app/AIO host (its routing is defined in the image).

In the seed's 8-host HA both app nodes sit behind HAProxy. Each runs a small agent on the host
(`oml-lb-agent.service`, oml_lb_agent.py) that HAProxy asks every second whether to send the node
traffic; activate drains the node through it (`maint`) before restarting anything there, so a rolling
upgrade or restart sends no request to a node that is going down.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from omldeploy.components import acme, common
from omldeploy.components.base import Component, ConfigFile, Drain, Health, HostUnit, Port, Volume
from omldeploy.components.context import Ctx

AGENT_PORT = 8405
AGENT_DIR = "/usr/local/lib/omnileads"
AGENT = f"{AGENT_DIR}/oml_lb_agent.py"
AGENT_CONF = "/etc/omnileads/lb-agent.json"
AGENT_RUN = "/run/omnileads/lb-agent"


def balanced(ctx: Ctx) -> bool:
    """An app node behind HAProxy: the seed's 8-host HA (two-node HA has no HAProxy)."""
    t = ctx.tenant
    return t.layout.shape.value == "ha" and not t.layout.two_node and "app" in ctx.host.roles


def balancers(ctx: Ctx) -> tuple[str, ...]:
    return tuple(sorted(h.lan_ip for h in ctx.tenant.with_role("haproxy")))


class Nginx(Component):
    name = "nginx"
    description = "nginx (HTTPS entry point)"
    image = "nginx"
    hook_image_keys = ("lego",)  # certs: acme (components/acme)
    container = "oml-nginx-server"
    env_file = "/etc/default/nginx.env"
    roles = ("aio", "app")
    depends_on = ("omnileads", "daphne", "websockets", "kamailio")
    groups = ("app", "nginx", "restart", "restart_core", "restart_django")
    start_order = 90
    # a new connection to the app per request, at a fixed address (127.0.0.1, see env): an app upgrade
    # restarts the app only, not the entry point in front of it as well (that was a second web outage)
    follows_restarts = False

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s3 = dict(common.s3(ctx, browser=False))
        # 127.0.0.1, not the seed's `localhost`: nginx resolves `localhost` to two peers (127.0.0.1 and ::1,
        # where uwsgi/daphne do not listen). When the app restarts, both fail and nginx then refuses every
        # request for its fail_timeout (10 s) even once the app is back: measured, a 10 s web outage after
        # a restore became one as long as the app's own restart. A single peer is never marked down.
        env = [
            ("DJANGO_HOSTNAME", "127.0.0.1"),
            ("DAPHNE_HOSTNAME", "127.0.0.1"),
            ("KAMAILIO_HOSTNAME", ctx.kamailio_host),
            ("WEBSOCKETS_HOSTNAME", ctx.websockets_host),
            ("ENV", "prodenv"),
            ("S3_ENDPOINT", s3.get("S3_ENDPOINT", "")),
            ("CALLREC_DEVICE", s3["CALLREC_DEVICE"]),
        ]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [
            # read only: a compromised nginx must not plant files (or symlinks) where host root writes
            Volume("/etc/omnileads/certs", "/etc/omnileads/certs", "ro"),
            Volume("django_static", "/opt/omnileads/static"),
            Volume("django_callrec_zip", "/opt/omnileads/asterisk/var/spool/asterisk/monitor"),
            Volume("nginx_logs", "/var/log/nginx/"),
            *acme.volumes(ctx),
        ]

    def ports(self, ctx: Ctx) -> list[Port]:
        agent = [Port(AGENT_PORT, purpose="HAProxy agent (drain state)")] if balanced(ctx) else []
        return [Port(443, purpose="HTTPS / WSS", reach="public"), *agent, *acme.ports(ctx)]

    def health(self, ctx: Ctx) -> Health:
        return Health("https", host=ctx.lan, port=443, path="/")

    def drain(self, ctx: Ctx) -> Drain | None:
        if not balanced(ctx):
            return None
        return Drain(f"{AGENT_RUN}/state", f"{AGENT_RUN}/seen", balancers(ctx), 443)

    def _agent_conf(self, ctx: Ctx) -> str:
        return json.dumps({"address": ctx.lan, "port": AGENT_PORT, "state_file": f"{AGENT_RUN}/state",
                           "seen_dir": f"{AGENT_RUN}/seen", "peers": list(balancers(ctx))}, indent=1) + "\n"

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if not balanced(ctx):
            return acme.configs(ctx)
        agent = resources.files("omldeploy.components.nginx").joinpath("oml_lb_agent.py").read_text()
        return [ConfigFile(AGENT, agent, 0o755), ConfigFile(AGENT_CONF, self._agent_conf(ctx), 0o644)]

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        return [(AGENT_DIR, 0o755), (AGENT_RUN, 0o755)] if balanced(ctx) else acme.host_directories(ctx)

    def post_start(self, ctx: Ctx) -> list[str]:
        return acme.post_start(ctx)  # certs: acme: issue once nginx answers the challenges on port 80

    def hook_images(self, ctx: Ctx) -> list[str]:
        return acme.hook_images(ctx)

    def host_units(self, ctx: Ctx) -> list[HostUnit]:
        """On the host, not in a container: it must answer while nginx's container is being replaced."""
        if not balanced(ctx):
            return acme.host_units(ctx)  # certs: acme is refused in the balanced (HA) layouts
        agent = resources.files("omldeploy.components.nginx").joinpath("oml_lb_agent.py").read_text()
        digest = hashlib.sha256((agent + self._agent_conf(ctx)).encode()).hexdigest()[:16]
        unit = (f"# HAProxy agent of app node {ctx.host.name} (tenant {ctx.tenant.name}), rendered by omldeploy "
                f"(script {digest})\n"
                "[Unit]\n"
                f"Description=HAProxy agent: drain state of this app node (tenant {ctx.tenant.name})\n"
                "After=network-online.target\nWants=network-online.target\n\n"
                "[Service]\n"
                f"ExecStart=/usr/bin/python3 {AGENT} {AGENT_CONF}\n"
                "Restart=always\nRestartSec=1\n\n"
                "[Install]\nWantedBy=multi-user.target\n")
        return [HostUnit("oml-lb-agent.service", unit)]


COMPONENT = Nginx()
