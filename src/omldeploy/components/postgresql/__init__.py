"""PostgreSQL in a container (AIO/AIT data host; both data nodes in HA, with repmgr).

HA (upstream HEAD's containerised contract, components.md §2.3): both data nodes run the HA image with
`PGDATA=/var/lib/postgresql/data/pgdata`, the rendered postgresql.conf/pg_hba.conf/repmgr.conf mounted
under /etc and the repmgr credentials as the postgres user's `.pgpass`. The tool bootstraps replication
itself, with hooks that are safe to re-run:
  main    after start: repmgr role + database, then `repmgr primary register` (only while primary and
          not yet registered);
  backup  before start: `repmgr standby clone` from main, only into an empty volume (a node holding data
          is never re-cloned or re-initialised); after start: `repmgr standby register` once.
repmgrd runs beside it as its own unit (components/repmgr). The PostgreSQL socket directory is shared
with keepalived through /run/omnileads/postgresql so its health checks ask PostgreSQL for its role over
the local socket, with no password anywhere.
"""

from __future__ import annotations

import ipaddress
import shlex

from omldeploy.components.base import Component, ConfigFile, Health, Port, Volume
from omldeploy.components.context import Ctx
from omldeploy.inventory import values

HA_PGDATA = "/var/lib/postgresql/data/pgdata"
PGPASS = "/etc/omnileads/postgresql/pgpass"
REPMGR_CONF = "/etc/omnileads/postgresql/repmgr.conf"
#: host directory holding PostgreSQL's unix socket in HA (keepalived's role check connects there)
SOCKET_DIR = "/run/omnileads/postgresql"
#: the repmgr password file, inside the oml_postgres volume (persistent, 0600, owned by the image's
#: postgres user, whatever uid that is). A bind mount of the root-owned 0600 host file would not be
#: readable by that user (`:U` chowns to the container's *process* user, root for this one). Named
#: explicitly: `podman exec --user postgres` keeps the container's HOME, so ~/.pgpass is not found.
PGPASSFILE = "/var/lib/postgresql/data/.pgpass"

# --- HA split-brain guard (components/repmgr runs it; PostgreSQL's start gate and keepalived read it)
GUARD_DIR = "/usr/local/lib/omnileads"
GUARD = f"{GUARD_DIR}/oml_pg_guard.py"
GUARD_CONF = "/etc/omnileads/postgresql/guard.json"
#: persistent: a fenced node stays fenced across reboots until a recovery action rejoins it
FENCE_FILE = "/var/lib/omnileads/postgresql-ha/fenced"
#: volatile: the guard's "this primary may serve" (gone after a reboot); keepalived's PG_RW check needs it
GUARD_RUN_DIR = "/run/omnileads/pg-guard"
GUARD_OK = f"{GUARD_RUN_DIR}/ok"
#: repmgrd's failover_validation_command (a standby that sees no other tenant host does not promote)
VALIDATION = "/etc/omnileads/postgresql/failover_validation.sh"
VALIDATION_IN_CONTAINER = "/etc/repmgr-failover-validation.sh"


def listen_address(ctx: Ctx) -> str:
    """AIO keeps PostgreSQL on localhost (as the seed did); elsewhere it listens on the LAN address."""
    return "localhost" if ctx.tenant.layout.shape.value == "aio" else ctx.lan


def repmgr_volumes() -> list[Volume]:
    """What repmgr needs in any container of the HA image besides the volume (which holds PGPASSFILE)."""
    return [Volume(REPMGR_CONF, "/etc/repmgr.conf", "ro"), Volume(VALIDATION, VALIDATION_IN_CONTAINER, "ro")]


def witnesses(ctx: Ctx) -> list[tuple[str, int]]:
    """The tenant's hosts outside the data pair, with their SSH port: any of them answering (accepting
    or refusing a TCP connection) proves that a data node is not cut off from the network. Two-node HA
    has no such host: the operator names witnesses (`ha_witness`), or there are none (the guard then
    serves alone when the peer is silent, and the standby may promote: a partition gives two primaries)."""
    out: list[tuple[str, int]] = []
    if ctx.tenant.layout.two_node:
        return [w for w in values.witnesses(ctx.tenant.settings.opt("ha_witness")) if isinstance(w, tuple)]
    for h in ctx.tenant.hosts:
        if "data" in h.roles or not h.lan_ip:
            continue
        ip = str(ipaddress.ip_address(h.lan_ip))  # validated by the loader; a hostile value raises here
        port = int(str(h.vars.get("ansible_port", 22)))
        out.append((ip, port if 0 < port < 65536 else 22))
    return out


def main_node(ctx: Ctx) -> str:
    return next(h.lan_ip for h in ctx.tenant.hosts if "data" in h.roles and h.ha_role == "main")


class Postgres(Component):
    name = "postgresql"
    description = "PostgreSQL database"
    image = "postgres"
    container = "oml-postgresql-server"
    env_file = "/etc/default/postgres.env"
    roles = ("aio", "data")
    groups = ("postgres",)
    start_order = 20

    def placed(self, ctx: Ctx) -> bool:
        return ctx.facts.deploy_postgres and super().placed(ctx)

    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        s = ctx.tenant.settings
        env = [
            ("TZ", s.text("TZ")),
            ("POSTGRES_USER", s.text("postgres_user")),
            ("POSTGRES_PASSWORD", s.text("postgres_password")),
            ("POSTGRES_DB", s.text("postgres_database")),
        ]
        if s.flag("postgres_ha"):
            env += [("PGHOSTHA", "True"), ("PGHOSTRO", s.text("postgres_ro_host"))]
        if ctx.host.ha_role:
            env += [("PGHA", "True"), ("HA_ROLE", ctx.host.ha_role), ("PGDATA", HA_PGDATA),
                    ("PGPASSFILE", PGPASSFILE)]
        return env

    def volumes(self, ctx: Ctx) -> list[Volume]:
        vols = [Volume("oml_postgres", "/var/lib/postgresql/data")]
        if ctx.host.ha_role:
            vols += [
                Volume("/etc/omnileads/postgresql/postgresql.conf", "/etc/postgresql/postgresql.conf", "ro"),
                Volume("/etc/omnileads/postgresql/pg_hba.conf", "/etc/postgresql/pg_hba.conf", "ro"),
                *repmgr_volumes(),
                Volume(SOCKET_DIR, "/var/run/postgresql"),
            ]
        return vols

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        return [(SOCKET_DIR, 0o755)] if ctx.host.ha_role else []

    def exec_start_pre(self, ctx: Ctx) -> list[list[str]]:
        """HA: a node the guard fenced (it was primary and the other node was promoted, or it was cut
        off) must not start PostgreSQL, whoever asks (install, an operator, boot)."""
        if ctx.tenant.layout.shape.value != "ha" or not ctx.host.ha_role:
            return []
        return [["/usr/bin/python3", GUARD, "gate", GUARD_CONF]]

    def args(self, ctx: Ctx) -> list[str]:
        if ctx.host.ha_role:
            return ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
                    "-c", "hba_file=/etc/postgresql/pg_hba.conf"]
        return ["postgres", "-c", f"listen_addresses={listen_address(ctx)}"]

    def ports(self, ctx: Ctx) -> list[Port]:
        return [Port(5432, purpose="PostgreSQL")]

    def health(self, ctx: Ctx) -> Health:
        if ctx.host.ha_role:
            # a starting standby already listens but refuses connections until it is consistent;
            # pg_isready says "accepting" only once the hooks (registration) can connect
            return Health("exec", command=("pg_isready", "-q", "-h", "/var/run/postgresql"), timeout=180)
        return Health("tcp", host=listen_address(ctx), port=5432, timeout=120)

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        if not ctx.host.ha_role:
            return []
        peers = [h for h in ctx.tenant.hosts if "data" in h.roles]
        # the hooks (database creation) connect to the maintenance database from these hosts
        hook_hosts = [h for h in ctx.tenant.hosts if h.roles & {"voice", "app"}]
        node_id = 1 if ctx.host.ha_role == "main" else 2
        return [
            ConfigFile("/etc/omnileads/postgresql/postgresql.conf",
                       self.template("postgresql.conf.j2", ctx), 0o644),
            ConfigFile("/etc/omnileads/postgresql/pg_hba.conf",
                       self.template("pg_hba.conf.j2", ctx, peers=peers, hook_hosts=hook_hosts), 0o644),
            ConfigFile(REPMGR_CONF, self.template("repmgr.conf.j2", ctx, node_id=node_id), 0o644),
            ConfigFile(VALIDATION, self.template("failover_validation.sh.j2", ctx, witnesses=witnesses(ctx)), 0o755),
            # any host/database: the same password serves repmgr's own connections and replication
            ConfigFile(PGPASS, f"*:5432:*:repmgr:{ctx.secrets['repmgr_password']}\n",
                       0o600, secret=True),
        ]

    def pre_start(self, ctx: Ctx) -> list[str]:
        if ctx.host.ha_role == "main":
            return [seed_pgpass(ctx)]
        if ctx.host.ha_role == "backup":
            return [seed_pgpass(ctx), clone_standby(ctx)]
        return []

    def post_start(self, ctx: Ctx) -> list[str]:
        if ctx.host.ha_role == "main":
            return [register_primary(ctx)]
        if ctx.host.ha_role == "backup":
            return [register_standby(ctx)]
        return []


def _psql(ctx: Ctx, db: str) -> str:
    """psql inside the running server, as the bootstrap superuser over the local socket (trust)."""
    user = shlex.quote(ctx.tenant.settings.text("postgres_user"))
    return f"podman exec -i oml-postgresql-server psql -X -q -t -A -v ON_ERROR_STOP=1 -U {user} -d {db}"


def _in_recovery(ctx: Ctx) -> str:
    maint = shlex.quote(ctx.tenant.settings.text("postgres_maintenance_db"))
    return f"r=$({_psql(ctx, maint)} -c 'SELECT pg_is_in_recovery()') || exit 1"


#: repmgr inside the running server container, as the image's postgres user
REPMGR_ARGV = ["podman", "exec", "--user", "postgres", "oml-postgresql-server", "repmgr", "-f", "/etc/repmgr.conf"]


REPMGR = shlex.join(REPMGR_ARGV)

# the password is read inside the container from .pgpass: it never appears on a command line
REPMGR_ROLE_SQL = f"""\\set pw `cut -d: -f5- {PGPASSFILE} | head -n 1`
SELECT 'CREATE ROLE repmgr SUPERUSER LOGIN REPLICATION'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'repmgr') \\gexec
ALTER ROLE repmgr PASSWORD :'pw';
SELECT 'CREATE DATABASE repmgr OWNER repmgr' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'repmgr') \\gexec
"""


def _registered(ctx: Ctx, node_id: int, kind: str) -> str:
    query = f"SELECT count(*) FROM repmgr.nodes WHERE node_id = {node_id} AND type = '{kind}'"
    return f"n=$({_psql(ctx, 'repmgr')} -c {shlex.quote(query)} 2>/dev/null || echo 0)"


def register_primary(ctx: Ctx) -> str:
    """Main, once PostgreSQL is up: repmgr role/database and primary registration. A node that is a
    standby now (after a failover) is left alone."""
    maint = shlex.quote(ctx.tenant.settings.text("postgres_maintenance_db"))
    return "; ".join([
        _in_recovery(ctx),
        '[ "$r" = f ] || exit 0',
        f"printf '%s' {shlex.quote(REPMGR_ROLE_SQL)} | {_psql(ctx, maint)} || exit 1",
        _registered(ctx, 1, "primary"),
        f'[ "$n" = 1 ] || {REPMGR} primary register -F',
    ])


def seed_pgpass(ctx: Ctx) -> str:
    """Copy the rendered password file into the volume as the image's postgres user, mode 0600 (a
    one-shot container of the same image, so the uid is the image's own)."""
    image = ctx.image("postgres")
    install = f"install -m 0600 -o postgres -g postgres /tmp/pgpass {PGPASSFILE}"
    return (f"podman run --rm -v oml_postgres:/var/lib/postgresql/data -v {PGPASS}:/tmp/pgpass:ro {image} "
            f"{install}")


def clone_argv(ctx: Ctx, source: str) -> list[str]:
    """`repmgr standby clone` of `source` into this host's volume, in a one-shot container of the HA
    image as its postgres user (the first install's hook and the recovery actions run the same)."""
    vols = [Volume("oml_postgres", "/var/lib/postgresql/data"), *repmgr_volumes()]
    return ["podman", "run", "--rm", "--network=host", "-e", f"PGPASSFILE={PGPASSFILE}",
            *[a for v in vols for a in ("-v", v.spec())], "--user", "postgres", ctx.image("postgres"),
            "repmgr", "-h", source, "-U", "repmgr", "-d", "repmgr", "-f", "/etc/repmgr.conf", "standby", "clone",
            "--fast-checkpoint"]


def clone_standby(ctx: Ctx) -> str:
    """Backup, before PostgreSQL starts: clone main into an EMPTY volume only. A half-finished clone is
    removed again, so the next run retries instead of starting a broken data directory."""
    image = ctx.image("postgres")
    clone = shlex.join(clone_argv(ctx, main_node(ctx)))
    wipe = f"podman run --rm -v oml_postgres:/var/lib/postgresql/data {image} rm -rf {HA_PGDATA}"
    return "; ".join([
        "mp=$(podman volume inspect --format '{{.Mountpoint}}' oml_postgres 2>/dev/null)",
        f'if [ -n "$mp" ] && [ -f "$mp/{HA_PGDATA.rsplit("/", 1)[1]}/PG_VERSION" ]; then exit 0; fi',
        f"{clone} || {{ {wipe}; exit 1; }}",
    ])


def register_standby(ctx: Ctx) -> str:
    """Backup, once PostgreSQL is up: register the standby once (skipped when it is primary now)."""
    return "; ".join([
        _in_recovery(ctx),
        '[ "$r" = t ] || exit 0',
        _registered(ctx, 2, "standby"),
        f'[ "$n" = 1 ] || {REPMGR} standby register -F',
    ])


COMPONENT = Postgres()
