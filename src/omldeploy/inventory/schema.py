"""Every inventory variable omldeploy understands: its kind, scope, default and whether it is secret.

The table is the single source for unknown-key detection ("did you mean"), type checks, defaults and
secret redaction. Defaults apply only to keys the operator did not write: unlike the seed's
`group_vars/all`, nothing here can override an inventory value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TENANT = "tenant"  # tenant-wide: belongs under all.vars
HOST = "host"  # per host: host vars or group vars


@dataclass(frozen=True)
class Key:
    name: str
    kind: str
    scope: str = TENANT
    default: Any = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    note: str = ""
    unused: bool = False  # accepted for compatibility, has no effect (a warning says so)


VERSION_KEYS = (
    "omnileads_version",
    "websockets_version",
    "nginx_version",
    "kamailio_version",
    "asterisk_version",
    "rtpengine_version",
    "postgres_version",
)

# Tags of components deployed only when asked for (by the release or the inventory); a later inventory
# that no longer names them removes the component (see catalog `optional`).
OPTIONAL_VERSION_KEYS = ("fastagi_version", "astami_version")

MARKERS = ("omlaio", "omldata", "omlvoice", "omlapp", "omlhaproxy", "postgres_host_ha")

_KEYS: list[Key] = [
    # --- edition, versions, images
    Key("enterprise_edition", "bool", default=False),
    Key("omnileads_release", "str", note="take the image tags from the release catalog (docs/releases.md)"),
    *[Key(k, "version") for k in VERSION_KEYS],
    *[Key(k, "version", note="deploys its component when set") for k in OPTIONAL_VERSION_KEYS],
    Key("omlcron_version", "version", note="omlapp tag of the cron only (default: omnileads_version)"),
    Key("redis_version", "version"),
    Key("minio_version", "version"),
    Key("haproxy_version", "version"),
    Key("keepalived_version", "version"),
    Key("lego_version", "version", note="certs: acme: tag of the lego ACME client image"),
    Key("node_exporter_version", "version"),
    Key("postgres_exporter_version", "version"),
    Key("redis_exporter_version", "version"),
    Key("prometheus_version", "version"),
    Key("loki_version", "version"),
    Key("promtail_version", "version"),
    Key("redis2postgres_version", "version"),
    Key("container_image_registry", "str", default="docker.io"),
    Key("omlapp_repo", "str", default="omnileads"),
    Key("podman_unit_style", "enum", default="auto", choices=("auto", "classic", "quadlet")),
    # --- network shape
    Key("infra_env", "enum", choices=("cloud", "lan")),
    Key("fqdn", "host"),
    Key("omni_ip_wan", "ip"),
    Key("voip_public_hostname", "str"),
    Key("data_host", "host"),
    Key("voice_host", "host"),
    Key("application_host", "host"),
    Key("dialer_host", "host"),
    Key("rtpengine_host", "host"),
    Key("prometheus_host", "host"),
    Key("loki_host", "host"),
    Key("homer_host", "host"),
    # --- observability (docs/observability.md)
    Key("prometheus_retention", "duration", default="30d", note="how long the tenant Prometheus keeps samples"),
    Key("prometheus_listen", "enum", default="lan", choices=("lan", "all"),
        note="lan: Prometheus listens on the host's LAN address only; all: on every address"),
    Key("prometheus_remote_write_url", "endpoint",
        note="a central Prometheus/Mimir receiving every sample of the tenant (remote_write)"),
    Key("prometheus_remote_write_user", "str", note="basic-auth user for prometheus_remote_write_url"),
    Key("prometheus_remote_write_password", "str", secret=True,
        note="basic-auth password for prometheus_remote_write_url (a 0600 file on the Prometheus hosts)"),
    Key("loki_retention", "duration", default="7d", note="how long the tenant Loki keeps logs (whole days)"),
    Key("loki_url", "endpoint",
        note="a central Loki: Promtail pushes there with X-Scope-OrgID: <tenant>, and no tenant Loki is deployed"),
    Key("loki_user", "str", note="basic-auth user for loki_url"),
    Key("loki_password", "str", secret=True, note="basic-auth password for loki_url (a 0600 file on each host)"),
    Key("TZ", "tz"),
    Key("certs", "enum", choices=("selfsigned", "custom", "acme")),
    Key("acme_email", "str", note="certs: acme: the ACME account's contact address"),
    Key("acme_directory", "str", default="https://acme-v02.api.letsencrypt.org/directory",
        note="certs: acme: the ACME server's directory URL (default: Let's Encrypt production)"),
    Key("acme_challenge", "enum", default="http", choices=("http", "dns"),
        note="certs: acme: HTTP-01 through nginx on port 80, or DNS-01 through acme_dns_hook"),
    Key("acme_dns_hook", "str", note="certs: acme, acme_challenge: dns: executable on the web host that "
        "publishes/removes the TXT record (docs/certificates.md)"),
    # --- PostgreSQL
    Key("postgres_host", "host"),
    Key("postgres_ro_host", "host"),
    Key("postgres_ha", "bool", default=False),
    Key("postgres_out", "bool"),
    Key("postgres_port", "int", default=5432),
    Key("postgres_user", "str", default="omnileads"),
    Key("postgres_password", "str", secret=True),
    Key("postgres_database", "str", default="omnileads"),
    Key("postgres_maintenance_db", "str", default="postgres"),
    Key("postgres_ssl", "bool", default=False),
    Key("postgres_monitoring", "bool", default=False,
        note="managed PostgreSQL (cloud, postgres_out): run the PostgreSQL exporter beside Prometheus against it"),
    Key("centos_postgresql_version", "int", unused=True, note="PostgreSQL runs in a container here"),
    Key("data_directory", "str", unused=True, note="PostgreSQL data lives in the oml_postgres volume"),
    Key("upgrade_from_oml_1", "marker"),
    # --- object storage
    Key("bucket_url", "url"),
    Key("bucket_access_key", "str", secret=True),
    Key("bucket_secret_key", "str", secret=True),
    Key("bucket_name", "str", default="omnileads"),
    Key("bucket_region", "str", default="us-east-1"),
    Key("callrec_device", "enum", choices=("s3", "s3-no-check-cert")),
    Key("s3_http_admin_user", "str", default="omnileads"),
    Key("s3_http_admin_pass", "str", secret=True),
    # --- Asterisk / dialer / app settings
    Key("ami_user", "str", default="omnileads"),
    Key("ami_password", "str", secret=True),
    Key("dialer_user", "str", default="demoadmin"),
    Key("dialer_password", "str", secret=True),
    Key("shm_size", "int", default=64),
    Key("pkg_size", "int", default=8),
    Key("SCA", "int", default=3600),
    Key("ECCTL", "int", default=28800),
    Key("LOGIN_FAILURE_LIMIT", "int", default=10),
    Key("google_maps_api_key", "str", default="NULL", secret=True),
    Key("google_maps_center", "str", default='{ "lat": -31.416668, "lng": -64.183334 }'),
    Key("email_smtp_relay", "bool", unused=True, note="the seed never read it"),
    Key("email_backend", "str", default="django.core.mail.backends.dummy.EmailBackend"),
    Key("email_default_from", "str"),
    Key("email_host", "str"),
    Key("email_password", "str", secret=True),
    Key("email_user", "str"),
    Key("email_port", "int"),
    Key("email_ssl_certfile", "str"),
    Key("email_ssl_keyfile", "str"),
    Key("email_use_ssl", "bool"),
    Key("email_use_tls", "bool"),
    Key("restore_file_timestamp", "str"),
    Key("backup_keep", "int", note="retention after each backup: keep the N newest (omldeploy backups)"),
    Key("backup_keep_days", "int", note="retention after each backup: keep backups younger than D days"),
    Key("backup_compression", "int", default=1,
        note="zlib level (0-9) of custom-format dumps; 1 takes about half the time of pg_dump's default 6 "
             "for a dump some 7% larger"),
    Key("backup_schedule", "str", note="systemd OnCalendar expression: a timer on the database host runs backups"),
    Key("scalable_tunings", "marker"),
    Key("video_host", "host", unused=True, note="the seed never read it"),
    Key("backup_bucket", "str", unused=True, note="the seed never read it"),
    Key("restore_bucket", "str", unused=True, note="the seed never read it"),
    # --- high availability (tenant-wide)
    Key("omnileads_ha", "marker"),
    Key("redis_host", "host"),
    Key("redis_ip_main", "ip"),
    Key("redis_port", "int", default=6379),
    Key("ha_notification_email", "email"),
    Key("ha_vrid_base", "int", note="first VRRP virtual_router_id of the tenant (default: from its name)"),
    Key("omnileads_vip", "ip", note="HEAD two-node HA: the VIP for web and voice (voice_host/application_host)"),
    Key("postgres_rw_vip", "ip", note="HEAD two-node HA: the PostgreSQL read-write VIP (postgres_host)"),
    Key("postgres_ro_vip", "ip", note="the PostgreSQL read-only VIP (postgres_ro_host)"),
    Key("aio_1", "ip", note="HEAD two-node HA: the main node's LAN address (checked against the hosts)"),
    Key("aio_2", "ip", note="HEAD two-node HA: the backup node's LAN address (checked against the hosts)"),
    Key("ha_witness", "str",
        note="two-node HA: comma-separated addresses (host or host:port, default port 22) that both nodes "
             "reach, so a node can tell a dead peer from its own isolation"),
    Key("ha_vrrp_unicast", "bool", default=False,
        note="VRRP to the pair's other member by unicast, for networks without multicast"),
    Key("overlapping_addresses_ok", "bool", default=False,
        note="allow an ansible_host (same SSH port) or omni_ip_lan another tenant under instances/ also uses "
             "(different machines behind NAT or SSH port forwarding); needed in BOTH tenants"),
    # --- host firewall (render/firewall.py, docs/firewall.md)
    Key("firewall", "enum", default="none", choices=("none", "nftables", "firewalld"),
        note="none leaves each host's firewall as it is; nftables applies omldeploy's per-role rules"),
    Key("sip_allowed_sources", "sources", note="IPv4 addresses/CIDRs of the ITSPs allowed to the SIP trunk port"),
    Key("monitoring_sources", "sources", note="IPv4 addresses/CIDRs allowed to exporters, Prometheus, Loki"),
    Key("admin_sources", "sources", note="IPv4 addresses/CIDRs allowed to SSH and the admin consoles"),
    Key("firewall_rollback_seconds", "int", default=60,
        note="a new ruleset not confirmed over a new SSH connection within this time is undone on the host"),
    Key("voice_drain_timeout", "int", default=300,
        note="seconds to wait for a voice host's calls to end before Asterisk, Kamailio or RTPengine restarts "
             "(0: do not wait; `--force` skips the wait once)"),
    # --- per host
    Key("omni_ip_lan", "ip", scope=HOST),
    *[Key(m, "marker", scope=HOST) for m in MARKERS],
    Key("ha_rol", "enum", scope=HOST, choices=("main", "backup")),
    Key("ha_role", "enum", scope=HOST, choices=("main", "backup"), note="upstream HEAD's name for ha_rol"),
    Key("tenant_id", "str", scope=HOST, note="upstream HEAD's label; the tenant is the instances/<name> folder"),
    Key("ha_vip_nic", "nic", scope=HOST),
    Key("netaddr", "cidr", scope=HOST),
    Key("netprefix", "int", scope=HOST),
    Key("app_port", "int", scope=HOST, default=443),
]

KEYS: dict[str, Key] = {k.name: k for k in _KEYS}

SECRET_KEYS = frozenset(k.name for k in _KEYS if k.secret)


def is_connection_key(name: str) -> bool:
    """Ansible connection/behaviour variables pass through untouched (ansible_host, ansible_port...)."""
    return name.startswith("ansible_")
