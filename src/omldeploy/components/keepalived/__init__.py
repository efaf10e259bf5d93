"""keepalived (HA), in a container with host networking: moves the voice, HAProxy and PostgreSQL
VIPs and elects the app node that runs cron.

Fixes over the seed: the VRRP password is generated per tenant (not `1111`), virtual router ids are
derived from the tenant name (so two tenants on one L2 do not collide; `ha_vrid_base` overrides), and
transitions reach the host through a state file watched by a systemd path unit, because a script
inside a container cannot start host units or exec into other containers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from omldeploy.components.base import Component, ConfigFile, Health, HostUnit, Volume
from omldeploy.components.context import Ctx

STATE_DIR = "/run/omnileads/keepalived"


@dataclass(frozen=True)
class VRRPInstance:
    name: str
    vrid: int
    vip: str | None
    main: bool
    track: str | None = None  # process whose absence lowers priority
    track_file: str | None = None  # file holding a weight (PostgreSQL role)


def vrid_base(ctx: Ctx) -> int:
    s = ctx.tenant.settings
    if s.has("ha_vrid_base"):
        return s.num("ha_vrid_base")
    return 1 + zlib.crc32(ctx.tenant.name.encode()) % 200  # room for 5 ids below 255


class Keepalived(Component):
    name = "keepalived"
    description = "keepalived (VRRP virtual IPs)"
    image = "keepalived"
    container = "oml-keepalived-server"
    env_file = None
    groups = ("keepalived",)
    capabilities = ("NET_ADMIN", "NET_BROADCAST", "NET_RAW")
    start_order = 50

    def placed(self, ctx: Ctx) -> bool:
        return ctx.tenant.layout.shape.value == "ha" and bool(ctx.host.roles)

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return [Volume("/etc/omnileads/keepalived.conf", "/etc/keepalived/keepalived.conf", "ro"),
                Volume(STATE_DIR, STATE_DIR)]

    def podman_options(self, ctx: Ctx) -> list[str]:
        return ["--pid=host"]  # track_process sees asterisk/haproxy on the host

    def args(self, ctx: Ctx) -> list[str]:
        return ["keepalived", "--dont-fork", "--log-console", "--use-file=/etc/keepalived/keepalived.conf"]

    def health(self, ctx: Ctx) -> Health:
        return Health("active")

    def instances(self, ctx: Ctx) -> list[VRRPInstance]:
        s = ctx.tenant.settings
        base = vrid_base(ctx)
        main = ctx.host.ha_role == "main"
        out: list[VRRPInstance] = []
        roles = ctx.host.roles
        if "voice" in roles:
            out.append(VRRPInstance("VOICE", base, s.text("voice_host"), main, track="asterisk"))
        if "haproxy" in roles:
            out.append(VRRPInstance("HAPROXY", base + 1, s.text("application_host"), main, track="haproxy"))
        if "app" in roles:
            out.append(VRRPInstance("CRON", base + 2, None, main))
        if "data" in roles:
            out.append(VRRPInstance("PG_RW", base + 3, s.text("postgres_host"), main,
                                    track_file=f"{STATE_DIR}/pg_primary"))
            out.append(VRRPInstance("PG_RO", base + 4, s.text("postgres_ro_host"), not main,
                                    track_file=f"{STATE_DIR}/pg_standby"))
        return out

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        prefix = ctx.host.vars.get("netprefix", 24)
        content = self.template(
            "keepalived.conf.j2", ctx, instances=self.instances(ctx), prefix=prefix,
            nic=ctx.host.vars.get("ha_vip_nic", "eth0"), auth=ctx.secrets["keepalived_auth_pass"],
            state_dir=STATE_DIR,
        )
        files = [ConfigFile("/etc/omnileads/keepalived.conf", content, 0o600, secret=True),
                 ConfigFile("/usr/local/bin/oml_ha_transition", self.template("oml_ha_transition.sh.j2", ctx,
                                                                              state_dir=STATE_DIR), 0o755)]
        return files

    def host_units(self, ctx: Ctx) -> list[HostUnit]:
        units = [
            HostUnit("oml-ha-transition.path", self.template("oml-ha-transition.path.j2", ctx, state_dir=STATE_DIR)),
            HostUnit("oml-ha-transition.service", self.template("oml-ha-transition.service.j2", ctx)),
        ]
        if "data" in ctx.host.roles:
            units.append(HostUnit("oml-pg-role.service", self.template("oml-pg-role.service.j2", ctx,
                                                                       state_dir=STATE_DIR)))
        return units


COMPONENT = Keepalived()
