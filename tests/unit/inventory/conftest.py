"""Shared helpers for the inventory tests: build an inventory from an example by a small mutation.

A mutation is a callable. Text mutations (`replace`, `insert_after`, `text`) edit the example's raw
YAML, so comments, quoting and literal scalars survive; data mutations (`set_var`, `del_host`, ...) edit
the parsed document, which is then dumped again. Text mutations always run first, on the original text.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from omldeploy.cli.main import main as cli_main
from omldeploy.inventory import InventoryError, Tenant, load_tenant
from omldeploy.inventory.problems import Problem
from tests.unit.conftest import fill_placeholders

EXAMPLES = Path(__file__).resolve().parents[3] / "src" / "omldeploy" / "examples"
LAYOUTS = ("aio", "ait", "cloud", "ha")
DELETE = object()  # value for the `set_*` helpers meaning: remove the key


def example_text(layout: str) -> str:
    return (EXAMPLES / f"inventory_{layout}.yml").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- mutations


@dataclass(frozen=True)
class TextMutation:
    fn: Callable[[str], str]
    label: str

    def __call__(self, text: str) -> str:
        return self.fn(text)


@dataclass(frozen=True)
class DataMutation:
    fn: Callable[[dict[str, Any]], None]
    label: str

    def __call__(self, data: dict[str, Any]) -> None:
        self.fn(data)


Mutation = TextMutation | DataMutation


def replace(old: str, new: str, count: int = 1) -> TextMutation:
    """Replace raw text; the old text must be present (so a changed example fails loudly)."""

    def fn(text: str) -> str:
        assert old in text, f"mutation target not found in the example: {old!r}"
        return text.replace(old, new, count)

    return TextMutation(fn, f"replace {old!r}")


def insert_after(anchor: str, new_lines: str) -> TextMutation:
    """Insert raw lines after the (first) line that contains `anchor`."""

    def fn(text: str) -> str:
        lines = text.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if anchor in line:
                block = new_lines if new_lines.endswith("\n") else new_lines + "\n"
                return "".join([*lines[: i + 1], block, *lines[i + 1:]])
        raise AssertionError(f"anchor not found in the example: {anchor!r}")

    return TextMutation(fn, f"insert after {anchor!r}")


def text(whole: str) -> TextMutation:
    """Replace the whole document."""
    return TextMutation(lambda _old: whole, "whole text")


def _all_vars(data: dict[str, Any]) -> dict[str, Any]:
    group = data.setdefault("all", {})
    if group.get("vars") is None:
        group["vars"] = {}
    return group["vars"]


def _find_host(data: dict[str, Any], host: str) -> dict[str, Any]:
    def walk(group: dict[str, Any]) -> dict[str, Any] | None:
        hosts = group.get("hosts") or {}
        if host in hosts:
            if hosts[host] is None:
                hosts[host] = {}
            return hosts[host]
        for child in (group.get("children") or {}).values():
            found = walk(child or {})
            if found is not None:
                return found
        return None

    for top in data.values():
        found = walk(top or {})
        if found is not None:
            return found
    raise AssertionError(f"host {host} not in the example")


def _group(data: dict[str, Any], group: str) -> dict[str, Any]:
    body = data["all"]["children"][group]
    if body.get("vars") is None:
        body["vars"] = {}
    return body


def _set(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value is DELETE:
        assert key in mapping, f"cannot delete {key}: not present"
        del mapping[key]
    else:
        mapping[key] = value


def set_var(key: str, value: Any) -> DataMutation:
    """Set (or with DELETE remove) a tenant variable under all.vars."""
    return DataMutation(lambda d: _set(_all_vars(d), key, value), f"all.vars.{key}")


def del_var(key: str) -> DataMutation:
    return set_var(key, DELETE)


def set_host(host: str, key: str, value: Any) -> DataMutation:
    return DataMutation(lambda d: _set(_find_host(d, host), key, value), f"{host}.{key}")


def del_host(host: str, key: str) -> DataMutation:
    return set_host(host, key, DELETE)


def set_group(group: str, key: str, value: Any) -> DataMutation:
    return DataMutation(lambda d: _set(_group(d, group)["vars"], key, value), f"{group}.vars.{key}")


def del_group(group: str, key: str) -> DataMutation:
    return set_group(group, key, DELETE)


def edit(fn: Callable[[dict[str, Any]], None], label: str = "edit") -> DataMutation:
    """Any other structural change of the parsed document."""
    return DataMutation(fn, label)


# --------------------------------------------------------------------------- building and loading


class _Loader(yaml.SafeLoader):
    """Reads `NULL` as the text NULL (what the seed templates mean by `google_maps_api_key: NULL`)."""


_NULL = "tag:yaml.org,2002:null"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _NULL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|)$"), ["~", "n", ""])


def parse(inventory_text: str) -> Any:
    return yaml.load(inventory_text, Loader=_Loader)


class _Dumper(yaml.SafeDumper):
    """Dumps None as an empty value (`key:`), the way operators leave a key blank."""


_Dumper.add_representer(type(None), lambda d, _v: d.represent_scalar("tag:yaml.org,2002:null", ""))


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def build(layout: str, *mutations: Mutation, placeholders: bool = False) -> str:
    """The example of `layout` with the mutations applied (text ones first). The example's CHANGE-ME
    placeholders left by the text mutations are filled (validation refuses them) unless `placeholders`."""
    out = example_text(layout)
    for m in mutations:
        if isinstance(m, TextMutation):
            out = m(out)
    if not placeholders:
        out = fill_placeholders(out)
    data_mutations = [m for m in mutations if isinstance(m, DataMutation)]
    if data_mutations:
        data = parse(out)
        for m in data_mutations:
            m(data)
        out = dump(data)
    return out


@dataclass
class TenantDir:
    """instances/<name>/inventory.yml under a temporary folder."""

    instances: Path
    name: str

    @property
    def folder(self) -> Path:
        return self.instances / self.name

    @property
    def inventory(self) -> Path:
        return self.folder / "inventory.yml"

    def write(self, inventory_text: str, files: dict[str, bytes] | None = None) -> TenantDir:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.inventory.write_text(inventory_text, encoding="utf-8")
        for fname, content in (files or {}).items():
            (self.folder / fname).write_bytes(content)
        return self

    def load(self) -> Tenant:
        return load_tenant(self.folder, self.name)

    def problems(self) -> list[Problem]:
        """Load and return the problems; fails the test if the inventory loads."""
        with pytest.raises(InventoryError) as info:
            self.load()
        return info.value.problems

    def validate(self) -> CliResult:
        return run_cli("--instances", str(self.instances), "validate", "--tenant", self.name)


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv))
    return CliResult(code, out.getvalue(), err.getvalue())


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def describe(problems: Iterable[Problem]) -> str:
    return "\n".join(p.format() for p in problems)


@pytest.fixture
def tenant_dir(tmp_path: Path) -> Callable[..., TenantDir]:
    """Factory: tenant_dir(text, files=None, name='t1') writes a tenant under tmp_path/instances."""

    def make(inventory_text: str, files: dict[str, bytes] | None = None, name: str = "t1") -> TenantDir:
        return TenantDir(tmp_path / "instances", name).write(inventory_text, files)

    return make
