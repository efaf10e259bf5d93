"""How each catalog image is made from the shared layers: entrypoint role, default command, env.

Every image's ENTRYPOINT is `oml-sandbox-entry ROLE`; arguments given to `podman run` replace
CMD, as with the real images. Keys are the image keys of catalog/data/catalog.yaml (an alias such
as omlcron is built with its image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PATH = "/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageSpec:
    role: str
    cmd: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = "/"
    needs_weed: bool = False
    needs_lego: bool = False  # adds the controller's Debian /usr/bin/lego as /usr/local/bin/lego
    what: str = ""  # one line for docs/status: real service or stand-in
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""  # image config User, as the official image sets it (haproxy runs as `haproxy`)
    #: the official image's STOPSIGNAL: postgres sets SIGINT (fast shutdown: sessions end at once), which
    #: is what `podman stop`/`systemctl stop` send; with SIGTERM (smart) clients could keep writing
    stop_signal: str = "SIGTERM"


SPECS: dict[str, ImageSpec] = {
    "omlapp": ImageSpec("omlapp", ports=("8099/tcp", "8098/tcp", "8097/tcp"),
                        workdir="/opt/omnileads/ominicontacto",
                        what="stand-in: uwsgi/daphne/cron by command or env; manage.py recorder"),
    "websockets": ImageSpec("websockets", ports=("8000/tcp",), what="stand-in: needs Redis"),
    "nginx": ImageSpec("nginx", cmd=("nginx",), ports=("443/tcp",),
                       what="real nginx: HTTPS 443, proxies to DJANGO_HOSTNAME:8099, /health"),
    "kamailio": ImageSpec("kamailio", ports=("14443/tcp",), what="stand-in: TLS 14443, needs Redis"),
    "asterisk": ImageSpec("asterisk", ports=("5038/tcp", "7088/tcp"),
                          what="stand-in: AMI 5038, metrics/health 7088, asterisk -rx recorder"),
    "rtpengine": ImageSpec("rtpengine", ports=("22222/udp", "22222/tcp"),
                           what="stand-in: ng ping on 22222/udp"),
    "postgres": ImageSpec("postgres", cmd=("postgres",), ports=("5432/tcp",), stop_signal="SIGINT",
                          volumes=("/var/lib/postgresql/data",),
                          env=(("PGDATA", "/var/lib/postgresql/data"),),
                          what="real PostgreSQL 15 + repmgr 5 with the official image's POSTGRES_* bootstrap"),
    "redis": ImageSpec("redis", ports=("6379/tcp",), volumes=("/data",),
                       what="real Redis 7.0 (BIND_IP, /data); redis-sentinel CONF"),
    "minio": ImageSpec("minio", cmd=("server", "/data"), ports=("9000/tcp",), volumes=("/data",),
                       needs_weed=True, what="SeaweedFS S3 on :9000 with MINIO_ROOT_USER/PASSWORD"),
    # the official image (>= 2.4) runs as user haproxy: ports below 1024 need NET_BIND_SERVICE
    "haproxy": ImageSpec("haproxy", cmd=("haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"), user="haproxy",
                         what="real HAProxy 2.6 as user haproxy with /usr/local/etc/haproxy/haproxy.cfg"),
    "lego": ImageSpec("lego", needs_lego=True, what="real lego ACME client (Debian's build; arguments are lego's)"),
    "keepalived": ImageSpec("keepalived", what="real keepalived 2.2 with /etc/keepalived/keepalived.conf"),
    "node_exporter": ImageSpec("node-exporter", ports=("9100/tcp",), what="real prometheus-node-exporter"),
    "postgres_exporter": ImageSpec("postgres-exporter", ports=("9187/tcp",),
                                   what="real prometheus-postgres-exporter (DATA_SOURCE_NAME)"),
    "redis_exporter": ImageSpec("redis-exporter", ports=("9121/tcp",),
                                what="real prometheus-redis-exporter (REDIS_ADDR)"),
    "prometheus": ImageSpec("prometheus", cmd=("--config.file=/etc/prometheus/prometheus.yml",
                                               "--storage.tsdb.path=/prometheus"),
                            ports=("9090/tcp",), volumes=("/prometheus",), user="nobody",
                            what="real Prometheus 2.42 as user nobody (as prom/prometheus), TSDB in /prometheus"),
    "loki": ImageSpec("loki", cmd=("-config.file=/etc/loki/local-config.yaml",), ports=("3100/tcp",),
                      what="stand-in: /ready and /loki/api/v1/push on 3100"),
    "promtail": ImageSpec("promtail", cmd=("-config.file=/etc/promtail/config.yml",), ports=("9080/tcp",),
                          what="stand-in: reads config, pushes heartbeats to its clients, /ready on 9080"),
    "redis2postgres": ImageSpec("redis2postgres", ports=("8096/tcp",),
                                what="stand-in: needs PostgreSQL and Redis; /health on 8096"),
    "fastagi": ImageSpec("fastagi", cmd=("python", "/app/fastagi.py"), ports=("4573/tcp", "8094/tcp"),
                         workdir="/app",
                         what="stand-in: FastAGI on FASTAGI_HOSTNAME:4573, needs PostgreSQL and Redis; "
                              "/health on 8094"),
    "astami": ImageSpec("astami", ports=("8093/tcp",),
                        what="stand-in: AMI session to ASTERISK_HOSTNAME:5038 (AMI_USER/AMI_PASSWORD) and "
                             "Redis; /health on 8093"),
}

def missing_spec(key: str) -> ImageSpec:
    """Spec for a catalog image the sandbox has no stand-in for: it exits 1 naming the gap, so a
    test using it fails with a clear message instead of a missing-image error."""
    return ImageSpec("missing", cmd=(key,), what="no stand-in: exits 1 with a FATAL line")


#: Tag variants pushed besides `default` and `alt`: `<default>-broken` refuses to start.
BROKEN_SUFFIX = "-broken"
