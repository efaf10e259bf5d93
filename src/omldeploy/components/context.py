"""What a component renders itself from: the tenant, its host, the tenant-wide addresses (`Facts`) and
a read-only view of the placement.

It sits below both `components/` and `placement.py`: placement imports the components to place them,
so the components must not import placement (they used to, for `Ctx`, which made a cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from omldeploy.catalog.releases import ENTERPRISE_SUFFIX, images
from omldeploy.inventory.model import Host, Tenant


class PlacementView(Protocol):
    """What a component may ask of the placement: who runs what, and the tenant's generated secrets."""

    @property
    def secrets(self) -> Mapping[str, str]: ...

    def components(self, host: str) -> list[str]: ...


@dataclass(frozen=True)
class Facts:
    """Tenant-wide addresses (the seed's data_host, redis_host, minio_host ... facts)."""

    data_host: str
    voice_host: str
    application_host: str
    postgres_host: str  # where clients connect
    postgres_port: int
    redis_host: str  # where clients connect
    minio_host: str | None  # None when the bucket is external
    s3_endpoint: str  # internal S3 endpoint (components on the hosts)
    s3_browser_endpoint: str  # what the browser is given by the web app
    bucket_aws: bool
    kamailio_host: str  # AIO/AIT only; in HA each app node uses its own (`Ctx.kamailio_host`)
    websockets_host: str  # AIO/AIT only; in HA each app node uses its own (`Ctx.websockets_host`)
    asterisk_host: str
    rtpengine_host: str
    nginx_host: str
    dialer_host: str
    loki_push_url: str | None  # where Promtail pushes; None: no log shipping
    loki_central: bool  # loki_url: a multi-tenant Loki, told the tenant by X-Scope-OrgID
    prometheus_host: str
    omni_ip_wan: str
    deploy_postgres: bool
    deploy_minio: bool
    deploy_loki: bool


@dataclass(frozen=True)
class Ctx:
    """Everything a component needs to render itself for one host."""

    tenant: Tenant
    host: Host
    facts: Facts
    placement: PlacementView

    @property
    def secrets(self) -> Mapping[str, str]:
        """Secrets generated for this tenant (keepalived password, repmgr password)."""
        return self.placement.secrets

    def image(self, key: str) -> str:
        """Full image reference. uwsgi, daphne and cron all use the same omlapp image (the seed let
        daphne and cron ignore `enterprise_edition` and `omlapp_repo`, skewing versions). A version value
        `repository:tag` names its own repository and is taken literally (catalog.ImageRef.split)."""
        s = self.tenant.settings
        ref = images()[key]
        versions = self.tenant.versions
        value = versions.get(ref.tag_key) or versions[images()[ref.same_as or key].tag_key]
        repo, tag = ref.split(value)  # a `repository:tag` value names its own repository
        if "omlapp" in (key, ref.same_as) and repo == ref.repo:
            repo = f"{s.text('omlapp_repo')}/omlapp"
            if s.flag("enterprise_edition"):
                tag = f"{tag}{ENTERPRISE_SUFFIX}"
        registry = s.text("container_image_registry") if s.has("container_image_registry") else ref.registry
        return f"{registry}/{repo}:{tag}"

    @property
    def lan(self) -> str:
        return self.host.lan_ip

    @property
    def _per_node(self) -> bool:
        return self.tenant.layout.shape.value == "ha"

    @property
    def kamailio_host(self) -> str:
        """Where this host's nginx and omlapp reach Kamailio. In HA every app node runs its own
        Kamailio, and HAProxy (the `application_host` VIP) fronts only 80/443/6379, so the VIP
        would send WSS to a port nobody listens on: each node uses its own address, as the seed's
        `omni_ip_lan`. Elsewhere the tenant-wide fact (`localhost` on AIO)."""
        return self.lan if self._per_node else self.facts.kamailio_host

    @property
    def websockets_host(self) -> str:
        """Where this host's nginx reaches the websockets service; per node in HA, like Kamailio."""
        return self.lan if self._per_node else self.facts.websockets_host

    def hosts_running(self, component: str) -> list[Host]:
        return [h for h in self.tenant.hosts if component in self.placement.components(h.name)]
