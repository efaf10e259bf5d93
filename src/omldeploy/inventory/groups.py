"""Ansible's YAML inventory shape: groups, hosts, children and where each variable comes from.

We read the same structure `ansible-inventory` reads (`all: {hosts, vars, children}`), and merge
variables with Ansible's precedence for inventory files: `all` vars, then group vars from the least to
the most specific group, then host vars. There is no hidden `group_vars/all` layer: what the operator
wrote is what the tool uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omldeploy.inventory.names import HOST_NAME_ALLOWED, host_name_problem
from omldeploy.inventory.problems import Problems
from omldeploy.inventory.yamlsource import Document

GROUP_KEYS = ("hosts", "vars", "children")


@dataclass(frozen=True)
class Origin:
    """Where a variable was written: the YAML path and the level that set it."""

    path: tuple[str, ...]
    level: str  # "all", "group:<name>" or "host"


@dataclass
class RawHost:
    name: str
    groups: list[str] = field(default_factory=list)
    own_vars: dict[str, Any] = field(default_factory=dict)
    own_path: tuple[str, ...] = ()


@dataclass
class RawGroup:
    name: str
    depth: int
    vars: dict[str, Any] = field(default_factory=dict)
    vars_path: tuple[str, ...] = ()
    hosts: list[str] = field(default_factory=list)


@dataclass
class RawInventory:
    """Groups and hosts as written, before any template is resolved."""

    groups: dict[str, RawGroup] = field(default_factory=dict)
    hosts: dict[str, RawHost] = field(default_factory=dict)

    @property
    def all_vars(self) -> dict[str, Any]:
        group = self.groups.get("all")
        return group.vars if group else {}

    def host_layers(self, host: str) -> list[tuple[dict[str, Any], Origin]]:
        """Variable layers for a host, lowest precedence first."""
        raw = self.hosts[host]
        groups = sorted(
            (self.groups[g] for g in set(raw.groups) | {"all"} if g in self.groups),
            key=lambda g: (g.depth, g.name),
        )
        layers: list[tuple[dict[str, Any], Origin]] = []
        for g in groups:
            level = "all" if g.name == "all" else f"group:{g.name}"
            layers.append((g.vars, Origin(g.vars_path, level)))
        layers.append((raw.own_vars, Origin(raw.own_path, "host")))
        return layers

    def merged(self, host: str) -> tuple[dict[str, Any], dict[str, Origin]]:
        values: dict[str, Any] = {}
        origins: dict[str, Origin] = {}
        for layer, origin in self.host_layers(host):
            for key, value in layer.items():
                values[key] = value
                origins[key] = Origin((*origin.path, key), origin.level)
        return values, origins

    def group_hosts(self) -> dict[str, list[str]]:
        """Ansible's `groups` magic variable: group -> hosts (children included)."""
        out: dict[str, list[str]] = {name: [] for name in self.groups}
        for host in self.hosts.values():
            for g in host.groups:
                out.setdefault(g, [])
                if host.name not in out[g]:
                    out[g].append(host.name)
        out["all"] = list(self.hosts)
        return out


def parse(doc: Document, problems: Problems) -> RawInventory:
    inv = RawInventory()
    data = doc.data
    if data is None:
        problems.add("(file)", "the inventory is empty", allowed="a mapping with an `all:` group")
        return inv
    if not isinstance(data, dict):
        problems.add(
            "(file)", "the inventory must be a YAML mapping", found=type(data).__name__,
            allowed="all: {hosts: ..., vars: ...}",
        )
        return inv
    if "all" not in data:
        problems.add("all", "no `all:` group at the top of the inventory", line=1,
                     allowed="all: {hosts: ..., vars: ..., children: ...}")
    inv.groups["all"] = RawGroup("all", 0)
    for name, body in data.items():
        if name == "all":
            _group(inv, "all", body, ("all",), [], 0, doc, problems)
        else:
            # Top-level groups other than `all` are implicit children of `all`, as in Ansible.
            _group(inv, name, body, (name,), [], 1, doc, problems)
    return inv


def _group(
    inv: RawInventory,
    name: str,
    body: Any,
    path: tuple[str, ...],
    parents: list[str],
    depth: int,
    doc: Document,
    problems: Problems,
) -> None:
    group = inv.groups.setdefault(name, RawGroup(name, depth))
    group.depth = max(group.depth, depth)
    if body is None:
        return
    line = doc.key_lines.get(path)
    if not isinstance(body, dict):
        problems.add(".".join(path), "a group must be a mapping", line=line, found=body,
                     allowed="hosts / vars / children")
        return
    lineage = [*parents, name] if name != "all" else parents
    for key, value in body.items():
        sub = (*path, key)
        kline = doc.key_lines.get(sub)
        if key not in GROUP_KEYS:
            problems.add(".".join(sub), "unknown group section (variables go under `vars:`)", line=kline,
                         found=key,
                         allowed=", ".join(GROUP_KEYS))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.add(".".join(sub), f"`{key}` must be a mapping", line=kline, found=value)
            continue
        if key == "vars":
            group.vars.update(value)
            group.vars_path = sub
        elif key == "hosts":
            for host_name, host_vars in value.items():
                hpath = (*sub, str(host_name))
                bad_name = host_name_problem(str(host_name))
                if bad_name is not None and str(host_name) not in inv.hosts:
                    problems.add(".".join(hpath), f"host name {bad_name}", line=doc.key_lines.get(hpath),
                                 found=host_name, allowed=HOST_NAME_ALLOWED)
                host = inv.hosts.setdefault(str(host_name), RawHost(str(host_name)))
                for g in lineage:
                    if g not in host.groups:
                        host.groups.append(g)
                if name not in host.groups and name != "all":
                    host.groups.append(name)
                group.hosts.append(str(host_name))
                if host_vars is None:
                    continue
                if not isinstance(host_vars, dict):
                    problems.add(".".join(hpath), "host variables must be a mapping",
                                 line=doc.key_lines.get(hpath), found=host_vars)
                    continue
                host.own_vars.update(host_vars)
                host.own_path = hpath
        else:
            for child, child_body in value.items():
                _group(inv, str(child), child_body, (*sub, str(child)), lineage, depth + 1, doc, problems)
