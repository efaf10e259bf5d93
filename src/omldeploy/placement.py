"""Layout → which component runs on which host, and every address components use to find each other.

The seed computed these facts in a `checks.yml` that only some actions ran (so `--action=redis` failed
on AIO/AIT). Here they are computed once, for every action, by pure functions of the tenant. Known
seed bugs are fixed, not copied: AIO exporters target the address PostgreSQL/Redis actually listen on,
HA Redis binds its own LAN address (not the HAProxy VIP), the public IP is never fetched over HTTP,
AIO gets Loki/Promtail, and HA hosts are found by role, not by hard-coded names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from omldeploy.components import registry
from omldeploy.components.base import Component
from omldeploy.components.common import host_port
from omldeploy.components.context import Ctx, Facts
from omldeploy.inventory.model import Host, Shape, Tenant


@dataclass
class Placement:
    tenant: Tenant
    facts: Facts
    secrets: Mapping[str, str] = field(default_factory=dict)
    by_host: dict[str, list[Component]] = field(default_factory=dict)

    def components(self, host: str) -> list[str]:
        return [c.name for c in self.by_host.get(host, [])]

    def ctx(self, host: Host) -> Ctx:
        return Ctx(self.tenant, host, self.facts, self)


def _is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def compute_facts(t: Tenant) -> Facts:
    s = t.settings
    shape = t.layout.shape
    if shape is Shape.AIO:
        aio = t.with_role("aio")[0]
        data = voice = app = aio.lan_ip
    elif shape is Shape.AIT:
        data = t.with_role("data")[0].lan_ip
        voice = t.with_role("voice")[0].lan_ip
        app = t.with_role("app")[0].lan_ip
    else:
        voice = s.text("voice_host")
        app = s.text("application_host")
        data = s.text("postgres_host")
    local = shape is Shape.AIO
    deploy_postgres = shape is Shape.HA or not s.has("postgres_host")
    if s.has("postgres_host"):
        pg_host = s.text("postgres_host")
    else:
        pg_host = "localhost" if local else data
    if t.layout.two_node:
        redis_host = "localhost"  # each node runs its own Redis (as HEAD); the transition resyncs it
    elif shape is Shape.HA:
        redis_host = s.opt("redis_host") or app
    else:
        redis_host = "localhost" if local else data
    deploy_minio = shape is not Shape.HA and not s.has("bucket_url")
    minio_host = data if deploy_minio else None
    bucket_url = s.opt("bucket_url")
    bucket_aws = bucket_url == "aws"
    media = (t.with_role("aio") or t.with_role("voice"))
    if s.has("omni_ip_wan"):
        wan = s.text("omni_ip_wan")
    elif media and _is_public(media[0].address):
        wan = media[0].address
    else:
        wan = media[0].lan_ip if media else voice
    if deploy_minio:
        s3_internal = f"http://{minio_host}:9000"
        if s.has("fqdn"):
            s3_browser = f"https://{s.text('fqdn')}"
        elif s.opt("infra_env") == "cloud":
            s3_browser = f"https://{wan}"
        else:
            s3_browser = f"https://{app}"
    elif bucket_aws:
        s3_internal = s3_browser = ""
    else:
        s3_internal = s3_browser = str(bucket_url)
    central_loki = s.opt("loki_url")
    loki = None if central_loki else (s.opt("loki_host") or (None if shape is Shape.HA else data))
    if central_loki:
        loki_push: str | None = (central_loki if central_loki.endswith("/loki/api/v1/push")
                                 else central_loki + "/loki/api/v1/push")
    elif loki:
        loki_push = f"http://{host_port(loki, 3100)}/loki/api/v1/push"
    else:
        loki_push = None
    return Facts(
        data_host=data,
        voice_host=voice,
        application_host=app,
        postgres_host=pg_host,
        postgres_port=s.num("postgres_port"),
        redis_host=redis_host,
        minio_host=minio_host,
        s3_endpoint=s3_internal,
        s3_browser_endpoint=s3_browser,
        bucket_aws=bucket_aws,
        kamailio_host="localhost" if local else app,
        websockets_host=app,
        asterisk_host=voice,
        rtpengine_host=s.opt("rtpengine_host") or voice,
        nginx_host=app,
        dialer_host=s.opt("dialer_host") or "localhost",
        loki_push_url=loki_push,
        loki_central=central_loki is not None,
        prometheus_host=s.opt("prometheus_host") or app,
        omni_ip_wan=wan,
        deploy_postgres=deploy_postgres,
        deploy_minio=deploy_minio,
        deploy_loki=loki is not None and not s.has("loki_host") and not central_loki,
    )


def place(t: Tenant, secrets: Mapping[str, str] | None = None) -> Placement:
    """Decide, for every host, the components it runs, in start order."""
    facts = compute_facts(t)
    placement = Placement(t, facts, dict(secrets or {}))
    comps = registry.all_components()
    for host in t.hosts:
        ctx = Ctx(t, host, facts, placement)
        placement.by_host[host.name] = sorted(
            (c for c in comps if c.placed(ctx)), key=lambda c: (c.order(ctx), c.name)
        )
    return placement
