"""Where a tenant's backup runs: bucket settings, how PostgreSQL is reached and from which host,
and where the Asterisk custom files live. Pure functions of the tenant and its rendered bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omldeploy.inventory.model import Shape, Tenant
from omldeploy.placement import compute_facts
from omldeploy.render.bundle import Bundle

CUSTOM_DIR = "/etc/asterisk/custom"
CLIENT_ENV = "/etc/default/django.env"
DB_ENV_MARKERS = (b"PGDATABASE=", b"DATA_SOURCE_NAME=", b"POSTGRES_DB=")


class TargetError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    s3: dict[str, Any]  # secret: only ever passed as module arguments of secret steps
    db_host: str
    db: dict[str, Any]
    files_host: str | None  # where Asterisk custom files are read for a backup
    files_hosts: tuple[str, ...]  # where they are restored (both voice nodes in HA)
    asterisk_container: str
    db_clients: dict[str, list[str]] = field(default_factory=dict)  # host -> units to stop for a restore
    images: dict[str, list[str]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return str(self.s3.get("endpoint") or f"https://s3.{self.s3.get('region')}.amazonaws.com (AWS)")

    @property
    def where(self) -> str:
        return f"bucket '{self.s3['bucket']}' at {self.endpoint}"


def resolve(tenant: Tenant, bundle: Bundle) -> Target:
    s = tenant.settings
    facts = compute_facts(tenant)
    s3 = {
        "endpoint": facts.s3_endpoint,
        "region": s.text("bucket_region") or "us-east-1",
        "bucket": s.text("bucket_name"),
        "access_key": s.text("bucket_access_key"),
        "secret_key": s.text("bucket_secret_key"),
        "verify_tls": s.text("callrec_device") != "s3-no-check-cert",
    }
    if not s3["access_key"] or not s3["secret_key"]:
        raise TargetError("bucket_access_key and bucket_secret_key must be set in the inventory to use backups")
    units = {(hb.host, u.name): u for hb in bundle.hosts for u in hb.units}
    database = s.text("postgres_database")
    pg = [(h, u) for (h, name), u in units.items() if name == "postgresql"]
    app = [(h, u) for (h, name), u in units.items() if name == "omnileads"]
    if pg and tenant.layout.shape is not Shape.HA:
        host, unit = pg[0]
        db = {"mode": "exec", "container": unit.container, "database": database, "maintenance_db": "postgres",
              "image": unit.image, "env_file": ""}
    elif app:
        host, unit = sorted(app, key=lambda hu: _ha_rank(tenant, hu[0]))[0]
        image = unit.hook_images[0] if unit.hook_images else ""
        if not image:
            raise TargetError("cannot find the PostgreSQL client image for the app host")
        db = {"mode": "client", "container": "", "database": database,
              "maintenance_db": s.text("postgres_maintenance_db"), "image": image, "env_file": CLIENT_ENV}
    else:
        raise TargetError(f"no host of tenant {tenant.name} runs PostgreSQL or the web app")
    voice = sorted(((h, u) for (h, name), u in units.items() if name == "asterisk"),
                   key=lambda hu: _ha_rank(tenant, hu[0]))
    clients: dict[str, list[str]] = {}
    for hb in bundle.hosts:
        for u in hb.units:
            if u.name in ("postgresql", "minio"):
                continue
            env = b""
            if u.env_file:
                try:
                    env = hb.file(u.env_file).content
                except KeyError:
                    env = b""
            if u.name == "asterisk" or any(m in env for m in DB_ENV_MARKERS):
                clients.setdefault(hb.host, []).append(u.name)
    return Target(
        s3=s3, db_host=host, db=db,
        files_host=voice[0][0] if voice else None,
        files_hosts=tuple(h for h, _ in voice),
        asterisk_container=voice[0][1].container if voice else "oml-asterisk-server",
        db_clients=clients,
        images={hb.host: hb.images for hb in bundle.hosts},
    )


def _ha_rank(tenant: Tenant, host: str) -> tuple[int, str]:
    role = tenant.host(host).ha_role
    return (0 if role in (None, "main") else 1, host)


def scratch_names(database: str) -> tuple[str, str]:
    """(scratch, previous) database names for a restore, within PostgreSQL's 63-byte limit."""
    base = database[:50]
    return f"{base}__restore", f"{base}__previous"


def drill_name(database: str) -> str:
    """The scratch database of a restore drill: not a restore's, so a drill never drops a restore's work."""
    return f"{database[:50]}__drill"
