"""Cross-field rules the seed never checked (inventory.md §5-6, actions.md §14 items 10-16).

Each rule is a small function adding problems; `check` runs them all so the operator sees everything
at once. Rules read the typed tenant, so they are free of YAML details except for line lookups.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from collections.abc import Callable

from omldeploy.catalog.releases import images
from omldeploy.inventory import acme, bounds, certcheck, connection, credentials, names
from omldeploy.inventory.model import Shape, Tenant
from omldeploy.inventory.problems import Problems
from omldeploy.inventory.values import duration_hours, witnesses
from omldeploy.inventory.yamlsource import Document

Rule = Callable[[Tenant, Problems, "Lines"], None]


class Lines:
    """Finds the line of a tenant-wide key (under all.vars) for messages."""

    def __init__(self, doc: Document, all_path: tuple[str, ...]) -> None:
        self._doc = doc
        self._all = all_path

    def __call__(self, key: str) -> int | None:
        return self._doc.key_lines.get((*self._all, key))


REQUIRED_ALWAYS = ("infra_env", "TZ", "certs", "callrec_device", "postgres_password", "ami_password",
                   "dialer_password", "bucket_access_key", "bucket_secret_key")


def _required(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    for key in REQUIRED_ALWAYS:
        if not s.has(key):
            p.add(key, "missing: this setting is required", allowed=_hint(key))
    if t.layout.shape is not Shape.HA and not t.layout.external_bucket and not s.has("s3_http_admin_pass"):
        p.add("s3_http_admin_pass", "missing: the bundled object store (MinIO) needs its admin password "
              "(or set bucket_url to use an external bucket)")


def _hint(key: str) -> str:
    return {
        "infra_env": "cloud, lan",
        "TZ": "an IANA zone such as America/Argentina/Cordoba",
        "certs": "selfsigned, custom, acme",
        "callrec_device": "s3, s3-no-check-cert",
    }.get(key, "a non-empty value")


def _postgres(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    ha = t.layout.shape is Shape.HA
    if s.flag("postgres_ssl") and not s.has("postgres_host"):
        p.add("postgres_ssl", "is true but postgres_host is not set: SSL only applies to an external "
              "PostgreSQL", line=line("postgres_ssl"), allowed="set postgres_host, or remove postgres_ssl")
    if s.has("postgres_out") and not ha:
        if s.flag("postgres_out") and not s.has("postgres_host"):
            p.add("postgres_out", "is true but postgres_host is not set: which PostgreSQL should the app use?",
                  line=line("postgres_out"), allowed="set postgres_host to the managed server")
        if not s.flag("postgres_out") and s.has("postgres_host"):
            p.add("postgres_out", "is false but postgres_host points at an external server",
                  line=line("postgres_out"), allowed="postgres_out: true, or remove postgres_host")
    if s.flag("postgres_ha") and not s.has("postgres_ro_host"):
        p.add("postgres_ha", "is true but postgres_ro_host (the read-only endpoint) is not set",
              line=line("postgres_ha"))
    if s.has("postgres_ro_host") and not s.flag("postgres_ha") and not ha:
        p.warn("postgres_ro_host", "is ignored unless postgres_ha is true", line=line("postgres_ro_host"))
    if s.has("postgres_host") and s.has("postgres_ro_host") and s.text("postgres_host") == s.text(
        "postgres_ro_host"
    ) and (ha or s.flag("postgres_ha")):
        p.add("postgres_ro_host", "equals postgres_host: the read-only VIP must differ from the read-write "
              "VIP", line=line("postgres_ro_host"), found=s.text("postgres_ro_host"))
    for key in ("postgres_database", "postgres_user", "postgres_maintenance_db"):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", s.text(key)):
            p.add(key, "is not a plain PostgreSQL name", line=line(key), found=s.text(key),
                  allowed="letters, digits and '_' (not starting with a digit), up to 63")
    port = s.num("postgres_port")
    if not 0 < port < 65536:
        p.add("postgres_port", "is not a TCP port", line=line("postgres_port"), found=port, allowed="1-65535")


def _bucket(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    if t.layout.shape is Shape.HA and not s.has("bucket_url"):
        p.add("bucket_url", "missing: high availability does not deploy MinIO, an external bucket is required",
              allowed="https://host[:port] or aws")
    url = s.opt("bucket_url")
    if url and url.startswith("http://") and s.text("callrec_device") == "s3-no-check-cert":
        p.warn("callrec_device", "s3-no-check-cert only matters for https buckets", line=line("callrec_device"))
    name = s.text("bucket_name")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name):
        p.add("bucket_name", "is not a valid S3 bucket name", line=line("bucket_name"), found=name,
              allowed="3-63 lowercase letters, digits, '.', '-'")


def _certs(t: Tenant, p: Problems, line: Lines) -> None:
    if t.settings.opt("certs") != "custom":
        return
    missing = False
    for fname in ("cert.pem", "key.pem"):
        f = t.folder / fname
        if not f.is_file():
            p.add("certs", f"is custom but {f} does not exist", line=line("certs"),
                  allowed="put cert.pem and key.pem in the tenant folder, or use certs: selfsigned")
            missing = True
            continue
        head = f.read_bytes()[:4096]
        marker = b"PRIVATE KEY-----" if fname == "key.pem" else b"BEGIN CERTIFICATE-----"
        if marker not in head:
            p.add("certs", f"{f} is not a PEM {'private key' if fname == 'key.pem' else 'certificate'}",
                  line=line("certs"))
            missing = True
    if missing:
        return
    # issue 12 M4: what would break nginx/Kamailio/HAProxy at restart, found before anything is pushed
    fqdn = t.settings.opt("fqdn")
    reach = [t.settings.text("omni_ip_wan")] if t.settings.opt("infra_env") == "cloud" and t.settings.opt(
        "omni_ip_wan") else []
    reach += [a for h in t.hosts if h.roles & {"aio", "app", "haproxy"} for a in (h.address, h.lan_ip) if a]
    for found in certcheck.check_custom(t.folder / "cert.pem", t.folder / "key.pem",
                                        must_cover=[fqdn] if fqdn else [], any_of=list(dict.fromkeys(reach))):
        p.add("certs", found.message, line=line("certs"), allowed=found.allowed, severity=found.severity)


def _acme(t: Tenant, p: Problems, line: Lines) -> None:
    acme.check(t, p, line)


def _addresses(t: Tenant, p: Problems, line: Lines) -> None:
    seen_lan: dict[str, str] = {}
    seen_ssh: dict[tuple[str, int], str] = {}
    for h in t.hosts:
        if h.lan_ip:
            if h.lan_ip in seen_lan:
                p.add(f"{h.name}.omni_ip_lan", f"same address as host {seen_lan[h.lan_ip]}", found=h.lan_ip,
                      allowed="a distinct address per host")
            seen_lan[h.lan_ip] = h.name
        ssh = (h.address, h.port)
        if ssh in seen_ssh:
            p.add(f"{h.name}.ansible_host", f"same SSH target as host {seen_ssh[ssh]}",
                  found=f"{h.address}:{h.port}")
        seen_ssh[ssh] = h.name


def _derived_hosts(t: Tenant, p: Problems, line: Lines) -> None:
    """In AIO/AIT, data/voice/application_host must point at the hosts that run those roles."""
    if t.layout.shape is Shape.HA:
        return
    expected: dict[str, str] = {}
    if t.layout.shape is Shape.AIO:
        aio = t.with_role("aio")[0]
        expected = {"data_host": aio.lan_ip, "voice_host": aio.lan_ip, "application_host": aio.lan_ip}
    else:
        expected = {
            "data_host": t.with_role("data")[0].lan_ip,
            "voice_host": t.with_role("voice")[0].lan_ip,
            "application_host": t.with_role("app")[0].lan_ip,
        }
    for key, want in expected.items():
        got = t.settings.opt(key)
        if got is not None and want and got != want:
            p.add(key, f"points at {got}, but the host with that role has omni_ip_lan {want}",
                  line=line(key), found=got, allowed=f"{want} (or remove the key: it is computed)")


def _wan(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    if s.opt("infra_env") != "cloud" or s.has("omni_ip_wan"):
        return
    media_hosts = t.with_role("aio") or t.with_role("voice")
    for h in media_hosts:
        try:
            public = ipaddress.ip_address(h.address).is_global
        except ValueError:
            public = False
        if not public:
            p.add("omni_ip_wan", f"missing: infra_env is cloud and host {h.name}'s ansible_host "
                  f"({h.address}) is not a public address, so the public IP for SIP/RTP is unknown "
                  "(omldeploy does not guess it over plain HTTP)",
                  allowed="omni_ip_wan: <public IPv4>, or infra_env: lan")


def _ha(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    if t.layout.shape is not Shape.HA:
        for h in t.hosts:
            if h.ha_role:
                p.warn(f"{h.name}.ha_rol", "is only used in high-availability layouts (omnileads_ha)")
        return
    if t.layout.two_node:
        _ha_two_node(t, p, line)
        return
    for key in ("postgres_host", "postgres_ro_host", "voice_host", "application_host", "redis_ip_main"):
        if not s.has(key):
            p.add(key, "missing: required in a high-availability layout", allowed=_ha_hint(key))
    by_role = {role: [h for h in t.hosts if role in h.roles] for role in ("data", "voice", "app", "haproxy")}
    for role, members in by_role.items():
        group = f"omnileads_{role}"
        if len(members) != 2:
            p.add(group, f"a high-availability layout needs exactly two {role} hosts",
                  found=", ".join(h.name for h in members) or "none", allowed="two hosts: ha_rol main and backup")
            continue
        for h in members:
            if h.ha_role is None:
                p.add(f"{h.name}.ha_rol", "missing: every HA host needs its initial role", allowed="main, backup")
            if "ha_vip_nic" not in h.vars:
                p.add(f"{h.name}.ha_vip_nic", "missing: the interface that carries the VIPs",
                      allowed="e.g. eth0")
        if sorted(str(h.ha_role) for h in members) != ["backup", "main"] and all(h.ha_role for h in members):
            p.add(group, "needs one ha_rol main and one ha_rol backup",
                  found=", ".join(f"{h.name}={h.ha_role}" for h in members))
    host_ips = {h.lan_ip: h.name for h in t.hosts} | {h.address: h.name for h in t.hosts}
    vips = {k: s.opt(k) for k in ("postgres_host", "postgres_ro_host", "voice_host", "application_host")}
    for key, vip in vips.items():
        if vip and vip in host_ips:
            p.add(key, f"is a virtual IP but equals host {host_ips[vip]}'s address", line=line(key), found=vip,
                  allowed="an unused address in the hosts' subnet")
    seen: dict[str, str] = {}
    for key in ("postgres_host", "voice_host", "application_host"):
        vip = vips[key]
        if vip and vip in seen:
            p.add(key, f"uses the same VIP as {seen[vip]}", line=line(key), found=vip)
        if vip:
            seen[vip] = key
    main = s.opt("redis_ip_main")
    apps = {h.lan_ip: h for h in by_role["app"]}
    if main and main not in apps:
        owner = host_ips.get(main)
        p.add("redis_ip_main", "must be the LAN address of an app node (Redis runs there)"
              + (f"; it is {owner}'s address" if owner else ""), line=line("redis_ip_main"), found=main,
              allowed=", ".join(sorted(apps)) or "an app node's omni_ip_lan")
    elif main and apps[main].ha_role != "main":
        p.warn("redis_ip_main", "points at the backup app node; Redis will start with the backup as master",
               line=line("redis_ip_main"))
    if s.has("redis_host") and s.opt("redis_host") != s.opt("application_host"):
        p.warn("redis_host", "differs from application_host; clients reach the Redis master through the "
               "HAProxy VIP", line=line("redis_host"))


def _ha_two_node(t: Tenant, p: Problems, line: Lines) -> None:
    """HEAD's HA: two all-in-one nodes, one VIP for web and voice, a PostgreSQL RW and RO VIP."""
    s = t.settings
    for key, seed in (("omnileads_vip", "voice_host"), ("postgres_rw_vip", "postgres_host"),
                      ("postgres_ro_vip", "postgres_ro_host")):
        if not s.has(seed):
            p.add(key, "missing: required in two-node high availability",
                  allowed={"omnileads_vip": "the VIP for web and voice",
                           "postgres_rw_vip": "the PostgreSQL read-write VIP",
                           "postgres_ro_vip": "the PostgreSQL read-only VIP"}[key])
    if s.has("voice_host") and s.has("application_host") and s.text("voice_host") != s.text("application_host"):
        p.add("application_host", "differs from omnileads_vip: two nodes serve web and voice on one VIP",
              line=line("application_host"), found=s.text("application_host"), allowed=s.text("voice_host"))
    nodes = [h for h in t.hosts if h.roles]
    if len(nodes) != 2:
        p.add("omnileads_aio", "two-node high availability needs exactly two all-in-one hosts",
              found=", ".join(h.name for h in nodes) or "none", allowed="two hosts: ha_role main and backup")
        return
    for h in nodes:
        if h.ha_role is None:
            p.add(f"{h.name}.ha_role", "missing: every HA host needs its initial role", allowed="main, backup")
        if "ha_vip_nic" not in h.vars:
            p.add(f"{h.name}.ha_vip_nic", "missing: the interface that carries the VIPs", allowed="e.g. eth0")
    if all(h.ha_role for h in nodes) and sorted(str(h.ha_role) for h in nodes) != ["backup", "main"]:
        p.add("ha_role", "needs one node with ha_role main and one with ha_role backup",
              found=", ".join(f"{h.name}={h.ha_role}" for h in nodes))
    by_role = {h.ha_role: h for h in nodes}
    for key, role in (("aio_1", "main"), ("aio_2", "backup")):
        node = by_role.get(role)
        if s.has(key) and node is not None and s.text(key) != node.lan_ip:
            p.add(key, f"is not the {role} node's omni_ip_lan (hosts are found by ha_role, this key only "
                  "cross-checks)", line=line(key), found=s.text(key), allowed=node.lan_ip)
    host_ips = {h.lan_ip: h.name for h in t.hosts} | {h.address: h.name for h in t.hosts}
    seen: dict[str, str] = {}
    for key, seed in (("omnileads_vip", "voice_host"), ("postgres_rw_vip", "postgres_host"),
                      ("postgres_ro_vip", "postgres_ro_host")):
        vip = s.opt(seed)
        if not vip:
            continue
        if vip in host_ips:
            p.add(key, f"is a virtual IP but equals host {host_ips[vip]}'s address", line=line(key), found=vip,
                  allowed="an unused address in the nodes' subnet")
        if vip in seen:
            p.add(key, f"uses the same VIP as {seen[vip]}", line=line(key), found=vip)
        seen[vip] = key
    for key in ("redis_ip_main", "redis_host"):
        if s.has(key):
            p.warn(key, "is not used in two-node high availability (each node runs its own Redis)", line=line(key))
    for item in witnesses(s.opt("ha_witness")):
        if isinstance(item, str):
            p.add("ha_witness", item, line=line("ha_witness"), found=s.text("ha_witness"),
                  allowed="comma-separated host or host:port, e.g. 10.0.0.1,10.0.0.2:443")
    if not s.has("ha_witness"):
        p.warn("omnileads_ha", "two-node high availability without ha_witness: a node that loses its peer cannot "
               "tell a dead peer from its own isolation, so a network partition gives two PostgreSQL primaries "
               "(the one on the older timeline fences itself when they meet again, and its writes since are "
               "lost). Set ha_witness to an address both nodes reach (the gateway, a router, a third host)")


def _ha_hint(key: str) -> str:
    return {
        "postgres_host": "the PostgreSQL read-write VIP",
        "postgres_ro_host": "the PostgreSQL read-only VIP (different from the RW VIP)",
        "voice_host": "the voice VIP",
        "application_host": "the HAProxy VIP",
        "redis_ip_main": "app_1's omni_ip_lan",
    }[key]


def _misc(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    try:
        json.loads(s.text("google_maps_center"))
    except ValueError:
        p.add("google_maps_center", "is not valid JSON", line=line("google_maps_center"),
              found=s.text("google_maps_center"), allowed='{ "lat": -31.4, "lng": -64.1 }')
    if s.text("email_backend") == "django.core.mail.backends.smtp.EmailBackend" and not s.has("email_host"):
        p.add("email_host", "missing: the SMTP e-mail backend needs email_host", line=line("email_backend"))
    ts = s.opt("restore_file_timestamp")
    if ts is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", ts):
        p.add("restore_file_timestamp", "must be a backup id (letters, digits, '.', '_', '-')",
              line=line("restore_file_timestamp"), found=ts)
    _schedule(s.opt("backup_schedule"), p, line)
    if s.has("backup_schedule") and not (s.text("bucket_access_key") and s.text("bucket_secret_key")):
        p.add("backup_schedule", "needs bucket_access_key and bucket_secret_key (the timer uploads to the bucket)",
              line=line("backup_schedule"))
    for key in ("shm_size", "pkg_size", "SCA", "ECCTL", "LOGIN_FAILURE_LIMIT"):
        if s.num(key) == 0:
            p.add(key, "must be greater than zero", line=line(key), found=0)
    for h in t.hosts:
        app_port = h.vars.get("app_port")
        if app_port is not None and not 0 < int(app_port) < 65536:
            p.add(f"{h.name}.app_port", "is not a TCP port", found=app_port, allowed="1-65535")
        prefix = h.vars.get("netprefix")
        if prefix is not None and not 1 <= int(prefix) <= 32:
            p.add(f"{h.name}.netprefix", "is not an IPv4 prefix length", found=prefix, allowed="1-32")
        if not h.roles:
            p.warn(h.name, "has no role marker; nothing will be deployed there")
    registry = s.text("container_image_registry")
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._/-]+)?", registry):
        p.add("container_image_registry", "is not a registry address", line=line("container_image_registry"),
              found=registry, allowed="host[:port][/path], e.g. docker.io or 10.0.0.5:5000")


CALENDAR_CHARS = re.compile(r"[A-Za-z0-9*:/,.~ +-]{1,100}")


def _schedule(spec: str | None, p: Problems, line: Lines) -> None:
    """A timer with a calendar spec systemd cannot parse never fires and says so only in the host's
    journal: check it here, with systemd's own parser when the controller has one."""
    if spec is None:
        return
    allowed = "a systemd OnCalendar expression, e.g. daily, '*-*-* 03:15' or 'Mon..Fri 22:30'"
    if not CALENDAR_CHARS.fullmatch(spec):
        p.add("backup_schedule", "is not a calendar expression", line=line("backup_schedule"), found=spec,
              allowed=allowed)
        return
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return
    try:
        proc = subprocess.run([tool, "calendar", spec], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return
    if proc.returncode != 0:
        p.add("backup_schedule", "systemd cannot parse this calendar expression", line=line("backup_schedule"),
              found=spec, allowed=allowed)


def _images(t: Tenant, p: Problems, line: Lines) -> None:
    """HA PostgreSQL runs repmgr inside the omnileads/postgres image; the official image (releases 1.32.2
    and later) has none, so an HA tenant must keep an omnileads/postgres tag."""
    value = t.versions.get("postgres_version")
    if t.layout.shape is not Shape.HA or value is None:
        return
    ref = images()["postgres"]
    repo, _tag = ref.split(value)
    if repo != ref.repo:
        key = "postgres_version" if t.settings.has("postgres_version") else "omnileads_release"
        p.add(key, f"selects the image {repo}, which has no repmgr: high availability needs {ref.repo}",
              line=line(key), found=value, allowed=f"postgres_version: an {ref.repo} tag, e.g. {ref.alt}")


def _weak_passwords(t: Tenant, p: Problems, line: Lines) -> None:
    credentials.weak_passwords(t, p, line)


def _identifiers(t: Tenant, p: Problems, line: Lines) -> None:
    names.identifiers(t, p, line)


def _bounds(t: Tenant, p: Problems, line: Lines) -> None:
    bounds.check(t, p, line)


def _host_keys(t: Tenant, p: Problems, line: Lines) -> None:
    connection.host_key_checking(t, p, line)


#: firewall_rollback_seconds: long enough for a new SSH connection on a slow link, short enough that a
#: ruleset that locked the controller out is undone before the operator gives up
ROLLBACK_MIN, ROLLBACK_MAX = 15, 600
FIREWALL_SOURCES = ("sip_allowed_sources", "monitoring_sources", "admin_sources")


#: voice_drain_timeout: up to a working day's longest calls; 0 turns the wait off
DRAIN_MAX = 86400


def _voice_drain(t: Tenant, p: Problems, line: Lines) -> None:
    """Bounds of the numeric operation settings (drain wait, dump compression)."""
    seconds = t.settings.num("voice_drain_timeout")
    if not 0 <= seconds <= DRAIN_MAX:
        p.add("voice_drain_timeout", "is out of range", line=line("voice_drain_timeout"), found=seconds,
              allowed=f"0 (do not wait) to {DRAIN_MAX} seconds")
    level = t.settings.num("backup_compression")
    if not 0 <= level <= 9:
        p.add("backup_compression", "is out of range", line=line("backup_compression"), found=level,
              allowed="0 (none) to 9 (smallest, slowest); 1 by default")


def _firewall(t: Tenant, p: Problems, line: Lines) -> None:
    s = t.settings
    kind = s.text("firewall")
    if kind == "firewalld":
        p.add("firewall", "firewalld is not supported yet: only nftables is (omldeploy keeps its rules in its "
              "own table, which coexists with the host's other nftables tables)", line=line("firewall"),
              found=kind, allowed="nftables, none")
    seconds = s.num("firewall_rollback_seconds")
    if not ROLLBACK_MIN <= seconds <= ROLLBACK_MAX:
        p.add("firewall_rollback_seconds", "is out of range", line=line("firewall_rollback_seconds"),
              found=seconds, allowed=f"{ROLLBACK_MIN}-{ROLLBACK_MAX} seconds")
    if kind == "none":
        for key in (*FIREWALL_SOURCES, "firewall_rollback_seconds"):
            if s.has(key):
                p.warn(key, "has no effect unless firewall is nftables (firewall: none leaves the hosts' "
                       "firewall as it is)", line=line(key))
        return
    if kind == "nftables" and not s.has("sip_allowed_sources"):
        p.warn("sip_allowed_sources", "is not set: with firewall nftables the SIP trunk port (5060/udp) is "
               "reachable only from the tenant's own hosts; list your ITSPs' addresses")


def _observability(t: Tenant, p: Problems, line: Lines) -> None:
    """Where metrics and logs go: a central endpoint's credentials come in pairs, and Loki keeps whole days."""
    s = t.settings
    if s.has("loki_url") and s.has("loki_host"):
        p.add("loki_url", "is set together with loki_host: logs go to one Loki", line=line("loki_url"),
              allowed="loki_url (a central Loki with a tenant header) or loki_host (a Loki without tenants)")
    for url, user, password in (("prometheus_remote_write_url", "prometheus_remote_write_user",
                                 "prometheus_remote_write_password"), ("loki_url", "loki_user", "loki_password")):
        if s.has(user) != s.has(password):
            have, missing = (user, password) if s.has(user) else (password, user)
            p.add(missing, f"is missing: {have} is set, and basic auth needs both", line=line(have),
                  allowed=f"both {user} and {password}, or neither")
        elif s.has(user) and not s.has(url):
            p.add(url, f"is missing: {user} and {password} are set for it", line=line(user),
                  allowed="an http(s) URL")
    if s.has("loki_retention") and duration_hours(s.text("loki_retention")) % 24:
        p.add("loki_retention", "is not a whole number of days (Loki's index period is 24h)",
              line=line("loki_retention"), found=s.text("loki_retention"), allowed="e.g. 7d, 2w, 720h")


RULES: tuple[Rule, ...] = (_required, _postgres, _bucket, _certs, _acme, _addresses, _derived_hosts, _wan, _ha, _misc,
                           _images, _weak_passwords, _identifiers, _bounds, _host_keys, _firewall, _voice_drain,
                           _observability)


def check(tenant: Tenant, problems: Problems, doc: Document, all_path: tuple[str, ...]) -> None:
    lines = Lines(doc, all_path)
    rejected = {x.key for x in problems.errors}  # keys written with a value that was already reported
    first_new = len(problems.items)
    credentials.placeholders(doc, all_path, problems)
    for rule in RULES:
        rule(tenant, problems, lines)
    # A key written with a rejected value is not "missing" too: keep only the precise report.
    problems.items[first_new:] = [
        x for x in problems.items[first_new:] if not (x.key in rejected and x.message.startswith("missing"))
    ]
