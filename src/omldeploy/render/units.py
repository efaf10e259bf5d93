"""systemd units for container components, in two styles from one description.

classic: the seed's `podman run` unit (what `podman generate systemd --new` writes), for Podman < 4.4.
quadlet: a `.container` file that Podman >= 4.4 turns into the same service at daemon-reload.
Both start the same container with the same options, so switching style changes nothing at runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2

_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./\-]+$")


@dataclass(frozen=True)
class UnitSpec:
    name: str
    description: str
    container: str
    image: str
    env_file: str | None
    volumes: tuple[str, ...]
    capabilities: tuple[str, ...]
    options: tuple[str, ...]
    args: tuple[str, ...]
    after: tuple[str, ...]
    wanted_by: str
    enabled: bool = True
    exec_start_pre: tuple[tuple[str, ...], ...] = ()  # host commands before each start (argv)
    runtime_env_files: tuple[str, ...] = ()  # written by those commands, read after env_file


def systemd_quote(arg: str) -> str:
    """Quote one command-line word for ExecStart/Exec: escape specifiers and variables, add quotes
    when the word has spaces or shell-ish characters."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    folder = resources.files("omldeploy.render").joinpath("templates")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _quoted(spec: UnitSpec) -> UnitSpec:
    return UnitSpec(
        spec.name, spec.description, spec.container, spec.image, spec.env_file,
        tuple(systemd_quote(v) for v in spec.volumes), spec.capabilities,
        tuple(systemd_quote(o) for o in spec.options), tuple(systemd_quote(a) for a in spec.args),
        spec.after, spec.wanted_by, spec.enabled,
        tuple(tuple(systemd_quote(a) for a in argv) for argv in spec.exec_start_pre),
        tuple(systemd_quote(f) for f in spec.runtime_env_files),
    )


def classic(spec: UnitSpec, tenant: str) -> str:
    return _env().get_template("classic.service.j2").render(u=_quoted(spec), tenant=tenant)


def quadlet(spec: UnitSpec, tenant: str) -> str:
    return _env().get_template("quadlet.container.j2").render(u=_quoted(spec), tenant=tenant)

