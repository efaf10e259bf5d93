"""What a component declares: image, unit, container, env, volumes, ports, dependencies, health check.

A component is a small class in its own folder (`components/<name>/__init__.py`) with its templates
beside it. The renderer and the apply engine only read these declarations, so adding a component means
adding one folder. Methods receive a `Ctx` (tenant + host + computed addresses) and return plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import jinja2

if TYPE_CHECKING:
    from omldeploy.components.context import Ctx


@dataclass(frozen=True)
class Volume:
    source: str  # named volume or absolute host path
    target: str
    options: str = ""

    def spec(self) -> str:
        return f"{self.source}:{self.target}" + (f":{self.options}" if self.options else "")


#: Who may reach a declared port when the tenant has a host firewall (render/firewall.py, docs/firewall.md):
#:   public      anyone (browsers, media): HTTPS/WSS, RTP
#:   sip         the tenant's hosts and `sip_allowed_sources` (the ITSPs' SIP trunks)
#:   lan         the tenant's own hosts only (databases, internal services)
#:   monitoring  the tenant's hosts and `monitoring_sources` (exporters, Prometheus, Loki)
#:   admin       the tenant's hosts and `admin_sources` (consoles)
#:   local       nobody from outside the host (it listens on loopback or is only used on the host)
REACHES = ("public", "sip", "lan", "monitoring", "admin", "local")


@dataclass(frozen=True)
class Port:
    """A port a component listens on (host networking). `last` > 0 makes it a range number..last;
    `reach` is who may connect to it once a host firewall is on (see REACHES)."""

    number: int
    proto: str = "tcp"
    purpose: str = ""
    reach: str = "lan"
    last: int = 0

    def __post_init__(self) -> None:
        if self.reach not in REACHES:
            raise ValueError(f"port {self.number}: reach {self.reach!r} is not one of {', '.join(REACHES)}")
        if self.proto not in ("tcp", "udp"):
            raise ValueError(f"port {self.number}: proto {self.proto!r} is not tcp or udp")

    @property
    def spec(self) -> str:
        """`5060` or `20000-50000`, as nft and the docs write it."""
        return f"{self.number}-{self.last}" if self.last else str(self.number)


@dataclass(frozen=True)
class Health:
    """How the apply engine knows a component is up after (re)start.

    kind: "tcp" (connect to host:port), "http"/"https" (GET path, status < 500), "exec" (command inside
    the container exits 0) or "active" (the unit is active; for components with no probe).
    """

    kind: str
    host: str = ""
    port: int = 0
    path: str = "/"
    command: tuple[str, ...] = ()
    timeout: int = 90


@dataclass(frozen=True)
class ConfigFile:
    """A file rendered from a template beside the component and installed on the host."""

    dest: str  # absolute path on the host
    content: str
    mode: int = 0o644
    secret: bool = False
    only_if_missing: bool = False  # operator-owned after creation (e.g. Asterisk custom dialplan)
    #: uid (and gid) of the file on the host; None: root. For a secret file that a container reads as its
    #: image's own user (prom/prometheus runs as nobody): mode 0600 and owned by that user
    owner: int | None = None


@dataclass(frozen=True)
class Drain:
    """How a host is taken out of a load balancer before its units restart, and put back after.

    Written by activate into `state_file` (`maint`, then `up ready`), read by the balancers through an
    agent on the host that notes in `seen_dir` which balancer (`peers`) was told what."""

    state_file: str
    seen_dir: str
    peers: tuple[str, ...]
    port: int  # the balanced port: activate waits (bounded) until the balancers' connections to it end
    timeout: float = 15.0


@dataclass(frozen=True)
class CallCounter:
    """Where the host's active calls are counted: AMI `CoreShowChannels` at `address:port`, with the
    account read on the host from `env_file` (AMI_USER, AMI_PASSWORD), never passed as an argument."""

    env_file: str
    address: str
    port: int


@dataclass(frozen=True)
class HostUnit:
    """A plain systemd unit (not a container) a component needs, e.g. a path unit."""

    name: str  # e.g. omlcron-leader.path
    content: str


class Component:
    """Base declaration. Subclasses set the class attributes and override the methods they need."""

    name: ClassVar[str]  # unit name without .service, and the id used everywhere
    description: ClassVar[str]
    image: ClassVar[str]  # image key in catalog/data/catalog.yaml
    hook_image_keys: ClassVar[tuple[str, ...]] = ()  # catalog keys of the images only its hooks run
    container: ClassVar[str]
    env_file: ClassVar[str | None] = None  # /etc/default/<x>.env
    owns_env_file: ClassVar[bool] = True  # False when it reuses another component's env file
    roles: ClassVar[tuple[str, ...]] = ()  # host roles it runs on (aio, data, voice, app, haproxy)
    depends_on: ClassVar[tuple[str, ...]] = ()  # components started before it (same host: After=/Wants=)
    # actions that touch it: per-component re-apply (app, voice, ...) and the seed's restart sets
    # (restart, restart_core, restart_django, restart_asterisk)
    groups: ClassVar[tuple[str, ...]] = ()
    wanted_by: ClassVar[str] = "default.target"
    capabilities: ClassVar[tuple[str, ...]] = ()
    start_order: ClassVar[int] = 50  # dependency-ordered start, lower first (seed matrix order)
    enabled_by_default: ClassVar[bool] = True
    #: a restart drops the host's calls (the voice path: Asterisk, Kamailio, RTPengine): activate waits
    #: for the calls to end first (CallCounter, `voice_drain_timeout`)
    drops_calls: ClassVar[bool] = False
    #: restarts when a same-host component it depends on restarts (the default: a client may hold state,
    #: a connection or a resolved address that only a restart renews). False for a proxy that opens a new
    #: connection per request: its own restart would only add an outage of its own
    follows_restarts: ClassVar[bool] = True
    _folder: ClassVar[Path]

    # --- placement
    def placed(self, ctx: Ctx) -> bool:
        """Whether this component runs on ctx.host. Default: the host has one of `roles`."""
        return bool(set(self.roles) & ctx.host.roles)

    def order(self, ctx: Ctx) -> int:
        """Start position on ctx.host (lower first). A component whose place in the chain depends on
        the layout overrides this; the default is the class's `start_order`."""
        return self.start_order

    # --- runtime declaration
    def env(self, ctx: Ctx) -> list[tuple[str, str]]:
        return []

    def volumes(self, ctx: Ctx) -> list[Volume]:
        return []

    def args(self, ctx: Ctx) -> list[str]:
        return []

    def podman_options(self, ctx: Ctx) -> list[str]:
        """Extra `podman run` options beyond the standard ones (kept minimal)."""
        return []

    def ports(self, ctx: Ctx) -> list[Port]:
        return []

    def health(self, ctx: Ctx) -> Health:
        return Health("active")

    def configs(self, ctx: Ctx) -> list[ConfigFile]:
        return []

    def host_units(self, ctx: Ctx) -> list[HostUnit]:
        return []

    def drain(self, ctx: Ctx) -> Drain | None:
        """How this host leaves its load balancer while its units restart (None: it has none)."""
        return None

    def call_counter(self, ctx: Ctx) -> CallCounter | None:
        """How the host's active calls are counted before a unit that `drops_calls` restarts (None: this
        component does not count them)."""
        return None

    def host_directories(self, ctx: Ctx) -> list[tuple[str, int]]:
        """Host directories it bind-mounts that may be missing on a fresh host (path, mode on creation).

        Podman refuses to start a container whose bind-mount source does not exist; these are created
        in the stage step when missing and never changed when present.
        """
        return []

    def pre_start(self, ctx: Ctx) -> list[str]:
        """Host shell commands run before the unit is (re)started (idempotent; e.g. create the database)."""
        return []

    def exec_start_pre(self, ctx: Ctx) -> list[list[str]]:
        """Commands (argv) systemd runs on the host before every start of the unit, whoever starts it
        (install, `systemctl start`, Restart=on-failure, boot), unlike `pre_start` which runs only
        when the apply engine (re)starts it. Each must finish quickly and bound its own waits. A non-zero
        exit refuses the start, with the command's output in the unit's journal (e.g. a fenced HA
        PostgreSQL node)."""
        return []

    def runtime_env_files(self, ctx: Ctx) -> list[str]:
        """Env files written at runtime (by `exec_start_pre`), passed to the container after `env_file`.
        Never part of the bundle, so what they hold never makes a re-run see a change."""
        return []

    def post_start(self, ctx: Ctx) -> list[str]:
        """Host shell commands run once the unit is healthy after a (re)start (idempotent)."""
        return []

    def hook_images(self, ctx: Ctx) -> list[str]:
        """Images the hooks use, pulled with the others before anything stops."""
        return []

    def enabled(self, ctx: Ctx) -> bool:
        """Whether the unit is enabled and started on install (HA cron runs on the main node only)."""
        return self.enabled_by_default

    # --- helpers for subclasses
    def template(self, name: str, ctx: Ctx, **extra: object) -> str:
        env = _jinja(self._folder / "templates")
        return env.get_template(name).render(ctx=ctx, t=ctx.tenant, s=ctx.tenant.settings, f=ctx.facts,
                                             host=ctx.host, **extra)

    def image_ref(self, ctx: Ctx) -> str:
        return ctx.image(self.image)


_ENVS: dict[Path, jinja2.Environment] = {}


def _jinja(folder: Path) -> jinja2.Environment:
    env = _ENVS.get(folder)
    if env is None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        _ENVS[folder] = env
    return env


def envfile(pairs: list[tuple[str, str]]) -> str:
    """Podman --env-file format: KEY=value per line, taken literally (no quotes, no expansion)."""
    lines = []
    for key, value in pairs:
        if "\n" in value or "\r" in value:
            raise ValueError(f"env value for {key} spans several lines")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"
