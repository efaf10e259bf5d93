"""Rewrite tenant-wide keys of an inventory in place (comments, order and layout kept).

`upgrade --release` and `rollback` keep the inventory naming the versions that run. A text search for
the first `vars:` line put a missing key under whichever group came first (a key that is read only
from `all.vars` or from a group holding every host: the inventory became invalid). This works on the
YAML node tree instead: a key already written in a `vars:` mapping is replaced where it is (the loader
accepted it there), a missing one goes to `all: vars:`, where the loader reads tenant-wide settings.

The previous text is kept as `<inventory>.bak` at mode 0600 (it holds every password of the tenant),
and the inventory is replaced atomically with its own mode.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from omldeploy.inventory.state_errors import writing


class RewriteError(Exception):
    """The inventory cannot be rewritten safely (a shape this writer does not handle)."""


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")


def _scalar(value: str) -> str:
    # a tag like 230210.10 stays plain, as operators write it (the loader reads the literal text of
    # version keys); anything else is double-quoted so it cannot change the document's structure
    if _PLAIN.match(value):
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar (newlines escaped)


def _pairs(node: yaml.Node) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                yield k, v


def _vars_mappings(node: yaml.Node) -> Iterator[yaml.MappingNode]:
    """Every mapping that is the value of a `vars:` key, anywhere in the document."""
    for k, v in _pairs(node):
        if k.value == "vars" and isinstance(v, yaml.MappingNode):
            yield v
        if isinstance(v, yaml.MappingNode):
            yield from _vars_mappings(v)


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    for k, v in _pairs(node):
        if k.value == key:
            return v
    return None


def _line_span(text: str, key: yaml.Node, value: yaml.Node) -> tuple[int, int]:
    """Start of the key's line to the end of the value's last line (newline included)."""
    start = text.rfind("\n", 0, key.start_mark.index) + 1
    end = value.end_mark.index
    if end > 0 and text[end - 1] == "\n":
        return start, end
    nl = text.find("\n", end)
    return start, len(text) if nl < 0 else nl + 1


def set_tenant_keys(path: Path, wanted: Mapping[str, str | None], *, add: frozenset[str]) -> list[str]:
    """Set each key of `wanted` (None: remove it); add a missing key only when it is in `add`.

    Returns the keys whose text changed. Nothing is written when none did."""
    text = path.read_text(encoding="utf-8")
    changed: list[str] = []
    for key, want in wanted.items():
        new = _set_one(text, key, want, key in add)
        if new != text:
            changed.append(key)
            text = new
    if changed:
        yaml.compose(text)  # never write a document that does not parse (compose: `!vault` values stay tags)
        with writing(path, "the inventory"):
            _replace(path, text)
    return changed


def _set_one(text: str, key: str, want: str | None, add: bool) -> str:
    root = yaml.compose(text)
    if root is None:
        raise RewriteError("the inventory is empty")
    found = [(k, v) for m in _vars_mappings(root) for k, v in _pairs(m) if k.value == key]
    if found:
        # edit from the end so earlier offsets stay valid
        for k, v in sorted(found, key=lambda kv: kv[0].start_mark.index, reverse=True):
            if want is None:
                start, end = _line_span(text, k, v)
                text = text[:start] + text[end:]
            elif not (isinstance(v, yaml.ScalarNode) and v.value == want):
                text = text[:v.start_mark.index] + _scalar(want) + text[v.end_mark.index:]
        return text
    if want is None or not add:
        return text
    all_node = _child(root, "all")
    if not isinstance(all_node, yaml.MappingNode) or all_node.flow_style or not all_node.value:
        raise RewriteError(f"cannot add {key}: the inventory has no block `all:` mapping; add "
                           f"`{key}: {want}` under `all: vars:` by hand")
    all_vars = _child(all_node, "vars")
    line = f"{key}: {_scalar(want)}\n"
    if isinstance(all_vars, yaml.MappingNode) and all_vars.value and not all_vars.flow_style:
        first = all_vars.value[0][0]
        at = text.rfind("\n", 0, first.start_mark.index) + 1
        column = int(first.start_mark.column)
        return text[:at] + " " * column + line + text[at:]
    if all_vars is not None and not (isinstance(all_vars, yaml.ScalarNode) and all_vars.value in ("", "~", "null")):
        raise RewriteError(f"cannot add {key}: `all: vars:` is not a block mapping; add `{key}: {want}` "
                           "there by hand")
    first_key = all_node.value[0][0]
    indent = int(first_key.start_mark.column)
    if all_vars is not None:  # `vars:` present but empty: replace that line
        vars_key = next(k for k, _ in _pairs(all_node) if k.value == "vars")
        start, end = _line_span(text, vars_key, all_vars)
        return text[:start] + " " * indent + "vars:\n" + " " * (indent + 2) + line + text[end:]
    at = text.rfind("\n", 0, first_key.start_mark.index) + 1
    return text[:at] + " " * indent + "vars:\n" + " " * (indent + 2) + line + text[at:]


def _replace(path: Path, text: str) -> None:
    """Keep the old text as a private .bak, then replace the inventory atomically with its own mode."""
    mode = path.stat().st_mode & 0o777
    _write(path.with_name(path.name + ".bak"), path.read_bytes(), 0o600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write(tmp, text.encode("utf-8"), mode)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, mode)  # also when the file existed with a wider mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
