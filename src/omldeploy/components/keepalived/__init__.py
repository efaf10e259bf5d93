"""keepalived (HA), in a container with host networking: moves the voice, HAProxy and PostgreSQL
VIPs and elects the app node that runs cron.

Fixes over the seed: the VRRP password is generated per tenant (not `1111`), virtual router ids are
derived from the tenant name (so two tenants on one L2 do not collide; `ha_vrid_base` overrides), and
transitions reach the host through a state file watched by a systemd path unit, because a script
inside a container cannot start host units or exec into other containers.

VIPs follow health, not only the host: every instance with a VIP has `vrrp_script` checks run by
keepalived itself (`oml_check.py`, Python standard library only, mounted into the container):
  PG_RW    FAULT unless the local PostgreSQL answers `pg_is_in_recovery() = false` (primary);
  PG_RO    FAULT unless the local PostgreSQL answers at all; +60 priority while it is a standby, so
           the standby holds the RO VIP and a lone primary holds both;
  VOICE    FAULT unless Asterisk's AMI answers with its banner;
  HAPROXY  FAULT unless HAProxy accepts connections on its HTTPS port.
Process tracking is not used: it needs the host's PID namespace and fails where proc events are
unavailable (`Failed to set/clear process event listen - errno 111`, seen in containers).

Voice, HAProxy and cron roles are sticky (see `holder`): the main wins when nobody holds a role, and
whoever holds it keeps it until its own check fails or its keepalived stops, so a node that comes
back never causes a second outage (nor drops the calls set up on the peer since the failover).
CRON has no VIP and no health check of its own: it follows the node (host, keepalived) and the
transition starts or stops omlcron; omlcron is never started at boot in HA.

Only keepalived's `notify` writes into STATE_DIR, the folder the transition path unit watches; the
transition script keeps its own markers in MARK_DIR, so nothing re-triggers the path unit in a loop.
"""

from __future__ import annotations

import shlex
import zlib
from dataclasses import dataclass
from importlib import resources

from omldeploy.components.base import Component, ConfigFile, Health, HostUnit, Volume
from omldeploy.components.context import Ctx
from omldeploy.components.postgresql import GUARD_OK, GUARD_RUN_DIR, SOCKET_DIR

STATE_DIR = "/run/omnileads/keepalived"
MARK_DIR = "/run/omnileads/ha-transition"
CHECK = "/etc/omnileads/keepalived/oml_check.py"
CHECK_IN_CONTAINER = "/etc/keepalived/oml_check.py"
#: the PostgreSQL wire client the `pg` checks import (beside the check script in the container)
PGWIRE = "/etc/omnileads/keepalived/oml_pgwire.py"
PGWIRE_IN_CONTAINER = "/etc/keepalived/oml_pgwire.py"
# run by the seed's asterisk_transition.sh after the module/res_odbc/pjsip reloads, inside the container
ASTERISK_TRANSITION = "/opt/asterisk/virtualenv/scripts/asterisk_transition.py"
#: two-node HA: the node taking the VIP refills its own Redis from the database (HEAD's
#: `oml_manage --redis_sync`; in the seed's image the same job is `regenerar_asterisk`)
REDIS_RESYNC = "podman exec oml-django-server python3 /opt/omnileads/ominicontacto/manage.py regenerar_asterisk"


@dataclass(frozen=True)
class Check:
    """One vrrp_script: `weight` 0 puts the instance in FAULT while the check fails; a positive
    weight raises the priority while it succeeds."""

    name: str
    args: str
    weight: int = 0
    interval: int = 1
    fall: int = 2
    timeout: int = 3


# Voice and HAProxy checks: a check that keepalived kills at its timeout counts as a failure, and on a
# starved host (the sandbox's install, 24 hosts on 2 cores) the interpreter alone took over 3 s: the
# main went FAULT, the backup took the (sticky) VIP and kept it. Three failures with 5 s each still
# detect a dead service in ~3 s (a refused connect fails at once), within the 5 s goal.
TOLERANT = {"fall": 3, "timeout": 5}


@dataclass(frozen=True)
class VRRPInstance:
    name: str
    vrid: int
    vip: str | None
    main: bool
    checks: tuple[Check, ...] = ()
    port: int = 0  # a port the VIP serves: keepalived's start waits until the VIP answers there


#: two-node HA start position: after PostgreSQL (20) and repmgr (22), before Redis and the app tier
TWO_NODE_ORDER = 24

# Priorities: main 100, backup 50. The holder's bonus must lift a backup that holds a role above a
# returning main (50 + 60 > 100) and keep the main's own total below 254 (keepalived's ceiling).
HOLDER_WEIGHT = 60


def holder(instance: str) -> Check:
    """Sticky role: +HOLDER_WEIGHT while this node is MASTER of `instance` (its state file says so).

    Why not plain preemption: a main that comes back (reboot, or its service restarted by systemd)
    would take the VIP back at once, a second outage for every failure, and on the voice VIP it would
    cut every call set up on the backup since the failover. Why not keepalived's `nopreempt`: it
    needs `state BACKUP` on both nodes, so after an install or a cold start whichever node's timer
    ends first wins, not the main. With this bonus the main wins whenever nobody holds the role, and
    whoever holds it keeps it until its own health check fails (weight 0 checks put it in FAULT,
    whatever its priority) or its keepalived stops. Moving a role back to the main is a planned act
    (restart keepalived on the holder), not a side effect of a reboot.
    """
    return Check(f"chk_{instance.lower()}_holder", f"state {STATE_DIR}/{instance}.state MASTER",
                 weight=HOLDER_WEIGHT, **TOLERANT)  # a bonus lost to a slow run would hand the role over


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
    start_order = 95  # after what its checks watch (PostgreSQL, Asterisk, HAProxy): its start waits for the VIPs

    def placed(self, ctx: Ctx) -> bool:
        return ctx.tenant.layout.shape.value == "ha" and bool(ctx.host.roles)

    def order(self, ctx: Ctx) -> int:
        """Two-node HA: right after PostgreSQL and repmgr. The node's own app tier reaches PostgreSQL
        through the RW VIP, which must exist before it starts (on the seed's layout that VIP lives on
        the data hosts, activated first)."""
        return TWO_NODE_ORDER if ctx.tenant.layout.two_node else self.start_order

    def volumes(self, ctx: Ctx) -> list[Volume]:
        vols = [Volume("/etc/omnileads/keepalived.conf", "/etc/keepalived/keepalived.conf", "ro"),
                Volume(CHECK, CHECK_IN_CONTAINER, "ro"),
                Volume(STATE_DIR, STATE_DIR)]
        if "data" in ctx.host.roles:
            vols += [Volume(SOCKET_DIR, "/run/postgresql"), Volume(GUARD_RUN_DIR, GUARD_RUN_DIR, "ro"),
                     Volume(PGWIRE, PGWIRE_IN_CONTAINER, "ro")]
        return vols

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
        if ctx.tenant.layout.two_node:
            # one VIP for web and voice (HEAD's `oml_aio`): it follows Asterisk AND nginx; cron and the
            # Redis refill follow it (transition). Not waited for at start: keepalived starts before both.
            ami = Check("chk_asterisk", "tcp 127.0.0.1 5038 Asterisk", **TOLERANT)
            web = Check("chk_nginx", f"tcp {ctx.lan} 443", **TOLERANT)
            out.append(VRRPInstance("VOICE", base, s.text("voice_host"), main, (ami, web, holder("VOICE"))))
            roles = roles - {"voice", "app"}
        if "voice" in roles:
            ami = Check("chk_asterisk", "tcp 127.0.0.1 5038 Asterisk", **TOLERANT)
            out.append(VRRPInstance("VOICE", base, s.text("voice_host"), main, (ami, holder("VOICE")), port=5038))
        if "haproxy" in roles:
            port = int(ctx.host.vars.get("app_port", 443))
            hap = Check("chk_haproxy", f"tcp 127.0.0.1 {port}", **TOLERANT)
            out.append(VRRPInstance("HAPROXY", base + 1, s.text("application_host"), main, (hap, holder("HAPROXY")),
                                    port=port))
        if "app" in roles:
            out.append(VRRPInstance("CRON", base + 2, None, main, (holder("CRON"),)))
        if "data" in roles:
            pg = f"{s.text('postgres_user')} {s.text('postgres_maintenance_db')}"
            # tolerant too: a loaded host that answers slowly must not drop the database VIPs. It costs no
            # failover time: nobody else may take the RW VIP before repmgrd promoted the standby, and the
            # standby's checks pass at once (rise 1).
            # primary AND the split-brain guard's confirmation that the peer is not a newer primary
            primary = Check("chk_pg_primary", f"pg primary {pg} {GUARD_OK}", **TOLERANT)
            up = Check("chk_pg_up", f"pg up {pg}", **TOLERANT)
            standby = Check("chk_pg_standby", f"pg standby {pg}", weight=60, **TOLERANT)
            out.append(VRRPInstance("PG_RW", base + 3, s.text("postgres_host"), main, (primary,), port=5432))
            out.append(VRRPInstance("PG_RO", base + 4, s.text("postgres_ro_host"), not main, (up, standby),
                                    port=5432))
        return out

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        prefix = ctx.host.vars.get("netprefix", 24)
        instances = self.instances(ctx)
        checks = list({c.name: c for i in instances for c in i.checks}.values())
        content = self.template(
            "keepalived.conf.j2", ctx, instances=instances, checks=checks, prefix=prefix,
            nic=ctx.host.vars.get("ha_vip_nic", "eth0"), auth=ctx.secrets["keepalived_auth_pass"],
            state_dir=STATE_DIR, check=CHECK_IN_CONTAINER, peers=self.peers(ctx),
        )
        check = resources.files("omldeploy.components.keepalived").joinpath("oml_check.py").read_text()
        files = [ConfigFile("/etc/omnileads/keepalived.conf", content, 0o600, secret=True),
                 ConfigFile(CHECK, check, 0o755),
                 ConfigFile("/usr/local/bin/oml_ha_transition",
                            self.template("oml_ha_transition.sh.j2", ctx, state_dir=STATE_DIR, mark_dir=MARK_DIR,
                                          asterisk_transition=ASTERISK_TRANSITION,
                                          cron_instance="VOICE" if ctx.tenant.layout.two_node else "CRON",
                                          resync=REDIS_RESYNC if ctx.tenant.layout.two_node else ""),
                            0o755)]
        if "data" in ctx.host.roles:
            wire = resources.files("omldeploy.components.postgresql").joinpath("oml_pgwire.py").read_text()
            files.append(ConfigFile(PGWIRE, wire, 0o644))
        return files

    def peers(self, ctx: Ctx) -> list[str]:
        """Unicast peers (`ha_vrrp_unicast: true`, for networks without multicast): the other member
        of this host's pair."""
        if not ctx.tenant.settings.flag("ha_vrrp_unicast"):
            return []
        return [h.lan_ip for h in ctx.tenant.hosts
                if h.name != ctx.host.name and h.roles & ctx.host.roles and h.ha_role]

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        dirs = [("/etc/omnileads/keepalived", 0o755), (STATE_DIR, 0o755)]
        if "data" in ctx.host.roles:
            dirs.append((GUARD_RUN_DIR, 0o755))
        return dirs

    def post_start(self, ctx: Ctx) -> list[str]:
        """Wait (bounded) until every VIP of this host's instances answers on its port, wherever it is
        held: the tiers activated next reach PostgreSQL, Redis and the web through these VIPs."""
        targets = [(i.vip, i.port) for i in self.instances(ctx) if i.vip and i.port]
        if not targets:
            return []
        pairs = ", ".join(f"('{vip}', {port})" for vip, port in targets)
        script = ("import socket, sys, time\n"
                  f"todo = [{pairs}]\n"
                  "end = time.monotonic() + 90\n"
                  "while todo and time.monotonic() < end:\n"
                  "    for t in list(todo):\n"
                  "        try:\n"
                  "            socket.create_connection(t, 2).close(); todo.remove(t)\n"
                  "        except OSError:\n"
                  "            pass\n"
                  "    if todo:\n"
                  "        time.sleep(0.5)\n"
                  "sys.exit('VIP not answering after 90 s: ' + ', '.join('%s:%d' % t for t in todo) if todo else 0)\n")
        return [f"python3 -c {shlex.quote(script)}"]

    def host_units(self, ctx: Ctx) -> list[HostUnit]:
        return [
            HostUnit("oml-ha-transition.path", self.template("oml-ha-transition.path.j2", ctx, state_dir=STATE_DIR)),
            HostUnit("oml-ha-transition.service", self.template("oml-ha-transition.service.j2", ctx)),
        ]


COMPONENT = Keepalived()
