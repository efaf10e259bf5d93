"""YAML loading that keeps line numbers and the operator's literal text.

PyYAML's plain loader loses two things operators care about: where a key was written (so an error can
point at the line) and the literal text of a scalar. The latter matters for compatibility: YAML 1.1
reads `asterisk_version: 230210.10` as the float 230210.1 and `postgres_password: 0123` as the octal 83;
Ansible then renders the mangled value. We keep the literal text so string settings stay what the
operator typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from omldeploy.inventory.problems import secret_key


@dataclass(frozen=True)
class Scalar:
    """A scalar as parsed by YAML plus its literal text and line."""

    value: Any
    text: str
    line: int
    plain: bool  # written without quotes


@dataclass(frozen=True)
class Duplicate:
    key: str
    line: int
    same_value: bool


MAX_DEPTH = 64  # far beyond any inventory; keeps deep nesting from exhausting Python's recursion limit
#: YAML nodes visited while building the data, aliases counted at every use: the largest example has a few
#: hundred, so this is far beyond any inventory while an alias bomb (billion laughs) stops in milliseconds
MAX_NODES = 20_000
#: an inventory is a few KB; a bigger file is refused before parsing so parsing stays bounded too
MAX_BYTES = 1_000_000


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses Ansible's `!unsafe` with a clear message (`!vault` is decrypted in _convert)."""


def _unsafe(loader: yaml.SafeLoader, node: Node) -> Any:
    # omldeploy marks every value it hands to Ansible as unsafe itself (see apply/engine.py), and a value
    # tagged by the operator would be accepted here as plain text but mean something else to Ansible
    raise yaml.constructor.ConstructorError(
        None, None, "the !unsafe tag is not supported: omldeploy never lets Ansible template inventory "
        "values, so write the value without the tag", node.start_mark)


_Loader.add_constructor("!unsafe", _unsafe)


@dataclass
class Document:
    """The parsed document: plain Python data, literal scalars and key lines by path."""

    data: Any
    scalars: dict[tuple[str, ...], Scalar]
    key_lines: dict[tuple[str, ...], int]
    duplicates: list[tuple[tuple[str, ...], Duplicate]]
    #: paths of values that were `!vault` encrypted (secrets by construction)
    vaulted: set[tuple[str, ...]] = field(default_factory=set)


def load(text: str) -> Document:
    """Parse one YAML document; raise YamlSyntaxError with a line on malformed input."""
    if len(text) > MAX_BYTES:
        raise YamlSyntaxError(f"the file is larger than {MAX_BYTES} characters (an inventory is a few KB)", None)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        raise YamlSyntaxError(f"nested deeper than {MAX_DEPTH} levels", None) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(f"{exc.problem or 'invalid YAML'} {exc.context or ''}".strip(), line) from None
    except yaml.YAMLError as exc:  # pragma: no cover - other PyYAML failures carry no mark
        raise YamlSyntaxError(str(exc), None) from None
    doc = Document(None, {}, {}, [])
    if node is None:
        return doc
    loader = _Loader("")
    try:
        doc.data = _convert(node, (), doc, loader, [0])
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlSyntaxError(str(exc.problem), mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    return doc


def _source(node: Node, value: Any) -> Any:
    """What a duplicate key is compared by: the text as written for a scalar (`230210.10` and `230210.1`
    are different settings even though YAML reads both as one float), the data for anything else."""
    if isinstance(node, ScalarNode):
        return (node.tag, str(node.value))
    return value


def _convert(node: Node, path: tuple[str, ...], doc: Document, loader: _Loader, count: list[int]) -> Any:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise yaml.constructor.ConstructorError(
            None, None, f"more than {MAX_NODES} values once aliases (*name) are expanded; an inventory has a "
            "few hundred (is an alias repeated inside another alias?)", node.start_mark)
    if len(path) > MAX_DEPTH:
        raise yaml.constructor.ConstructorError(
            None, None, f"nested deeper than {MAX_DEPTH} levels", node.start_mark
        )
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        sources: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain names", key_node.start_mark
                )
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "YAML merge keys (<<) are not supported in inventories", key_node.start_mark
                )
            key = str(key_node.value)
            sub = (*path, key)
            value = _convert(value_node, sub, doc, loader, count)
            source = _source(value_node, value)
            if key in out:
                doc.duplicates.append(
                    (path, Duplicate(key, key_node.start_mark.line + 1, sources[key] == source))
                )
            out[key] = value
            sources[key] = source
            doc.key_lines[sub] = key_node.start_mark.line + 1
        return out
    if isinstance(node, SequenceNode):
        return [_convert(item, (*path, str(i)), doc, loader, count) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    if node.tag == "!vault":
        # decrypted with ansible-core (inventory/vault.py); a wrong or missing password names the key
        from omldeploy.inventory.vault import decrypt

        plain = decrypt(str(node.value), ".".join(path) or "(document)", node.start_mark.line + 1)
        doc.scalars[path] = Scalar(plain, plain, node.start_mark.line + 1, False)
        doc.vaulted.add(path)
        return plain
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # PyYAML's implicit/explicit scalar constructors raise plain exceptions for values such as
        # `2023-13-45` (a "date"), `0x_`, `!!int abc`, `!!bool maybe` or a 5000-digit number
        # PyYAML's own message quotes the value too: a secret gets neither
        detail = "(secret, not shown)" if path and secret_key(path[-1]) else f"{str(node.value)[:40]!r}: {exc}"
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot read the value {detail}", node.start_mark
        ) from None
    doc.scalars[path] = Scalar(value, str(node.value), node.start_mark.line + 1, node.style is None)
    return value
