"""Resolve the Jinja expressions seed inventories contain, the way Ansible would, without `eval`.

Seed inventories say things like `data_host: "{{ hostvars['omnileads_aio'].omni_ip_lan }}"`. We
evaluate them with Jinja2's sandboxed environment (the engine Ansible's templating is built on), with
`hostvars`, `groups` and `inventory_hostname` available, lazily and with cycle detection. Values stay
strings, as in an Ansible template; typing happens afterwards against the schema.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from omldeploy.inventory.groups import RawInventory


class TemplateError(Exception):
    """An expression could not be resolved; the message says why in operator terms."""


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


#: the longest text or list any step of an inventory expression may produce: values are addresses, names
#: and passwords, so 20 000 is far beyond need while keeping every intermediate result a few MB at most
MAX_OUTPUT = 20_000
#: a template longer than this is not an inventory value (it is also what bounds `v ~ v ~ v ...`)
MAX_SOURCE = 4_096
#: numeric arguments of filters and methods (`center(10**9)`, `indent(...)`, `truncate(...)`)
MAX_ARGUMENT = 1_000
#: `range()` elements per call (Jinja's own sandbox allows 100 000)
MAX_RANGE = 1_000
#: bits of an integer result (`(10**64)**64`): far beyond any port or size
MAX_INT_BITS = 100_000
#: wall-clock backstop for all the expressions of one inventory
TIME_BUDGET = 4.0
#: statements that repeat or include: an inventory value is an expression, never a program
_FORBIDDEN = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Include, nodes.Import,
              nodes.FromImport, nodes.Extends, nodes.Block, nodes.With)
#: a `%` conversion or a `{...}` format field with a width/precision written as `*`, 4+ digits or a nested field
_BIG_PRINTF = re.compile(r"%[-#0 +]*(\*|\d{4,}|\d*\.(\*|\d{4,}))")
_BIG_FORMAT = re.compile(r"\{[^{}]*(\{|\d{4,})")


def _size(value: Any) -> int:
    """Characters/items in a value, nested containers included (`[[1]*10000]*10000` is 10**8, not 10**4);
    counting stops just past MAX_OUTPUT, so this is cheap even for a shared-reference bomb."""
    total = 0
    stack = [value]
    while stack and total <= MAX_OUTPUT:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


def _bounded(value: Any, what: str) -> Any:
    if _size(value) > MAX_OUTPUT:
        raise TemplateError(f"{what} too large in an inventory expression (over {MAX_OUTPUT} characters or items)")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateError(f"{what} too large in an inventory expression (a number of over {MAX_INT_BITS} bits)")
    return value


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_ARGUMENT:
            raise TemplateError(f"argument of {what} too large in an inventory expression (at most {MAX_ARGUMENT})")


def _check_printf(fmt: Any) -> None:
    if isinstance(fmt, str) and _BIG_PRINTF.search(fmt):
        raise TemplateError("'%' formatting with a '*' or a width/precision of 1000 or more is not allowed "
                            "in an inventory expression")


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateError(f"range too large in an inventory expression (at most {MAX_RANGE} items)")
    return rng


_bounded_range.__name__ = "range"  # what an error about its arguments calls it


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox plus bounds on everything that could hang validation or exhaust memory: arithmetic
    (`{{ 9**9**9 }}`, `'x' * 10**9`), `%` formatting widths, method and filter arguments (`center(10**9)`),
    `range()`, and the size of every intermediate result. Loops, macros and includes are refused when the
    template is parsed (`_parse`), so the work of one expression is bounded by its length."""

    intercepted_binops = frozenset(["**", "*", "%", "+"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise TemplateError("exponent too large in an inventory expression")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() * abs(right) > MAX_INT_BITS:
            raise TemplateError("exponent too large in an inventory expression")
        if operator == "*" and (isinstance(left, str | list) or isinstance(right, str | list)):
            count = right if isinstance(right, int) else left if isinstance(left, int) else 0
            seq = left if isinstance(left, str | list) else right
            if isinstance(count, int) and (count > 10_000 or _size(seq) * count > MAX_OUTPUT):
                raise TemplateError("repetition too large in an inventory expression")
        if operator == "+" and _size(left) + _size(right) > MAX_OUTPUT:
            raise TemplateError("concatenation too large in an inventory expression")
        if operator == "%":
            _check_printf(left)
        return _bounded(super().call_binop(context, operator, left, right), "result")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "a function")
        # the sandbox hands out str.format wrapped (functools.wraps keeps the bound method in __wrapped__)
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(owner, str):
            _check_arguments(args, kwargs, name)  # widths: center, ljust, rjust, zfill, expandtabs
            if name in ("format", "format_map") and _BIG_FORMAT.search(owner):
                raise TemplateError("format fields with a nested field or a width of 1000 or more are not "
                                    "allowed in an inventory expression")
            if name == "replace" and args and args[0] == "":
                raise TemplateError("replace('') is not allowed in an inventory expression")
        return _bounded(super().call(__context, __obj, *args, **kwargs), "result")

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if len(source) > MAX_SOURCE:
            raise TemplateError(f"expression longer than {MAX_SOURCE} characters")
        tree = super()._parse(source, name, filename)
        for node in tree.find_all(_FORBIDDEN):
            raise TemplateError(f"'{type(node).__name__.lower()}' statements (loops, macros, includes) are not "
                                "allowed in an inventory value: write an expression")
        return tree


#: filters whose numeric arguments are widths or counts of the output
_WIDTH_FILTERS = frozenset({"center", "indent", "truncate", "wordwrap", "batch", "slice", "filesizeformat"})


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter with its numeric arguments, `format` widths and result size bounded."""

    def run(*args: Any, **kwargs: Any) -> Any:
        values = list(args[1:] if hasattr(fn, "jinja_pass_arg") else args)  # without Jinja's context argument
        if name in _WIDTH_FILTERS:  # not `default(5432)`: only filters whose numbers are sizes
            _check_arguments(tuple(values[1:]), kwargs, f"the {name} filter")
        if name == "format" and values:
            _check_printf(values[0])
        return _bounded(fn(*args, **kwargs), f"result of the {name} filter")

    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(run, attr, getattr(fn, attr))
    return run


def _ansible_env() -> SandboxedEnvironment:
    env = _BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    # The few Ansible filters that inventories use in practice.
    env.filters["bool"] = _to_bool
    env.filters["mandatory"] = lambda v: v
    env.filters["quote"] = lambda v: "'" + str(v).replace("'", "'\"'\"'") + "'"
    env.filters = {name: _bounded_filter(name, fn) for name, fn in env.filters.items()}
    env.globals["range"] = _bounded_range
    for name in ("lipsum", "cycler", "joiner", "namespace", "dict"):
        env.globals.pop(name, None)
    return env


_ENV = _ansible_env()


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class Resolver:
    """Lazily resolves every variable of every host; `all`-level values without host context."""

    def __init__(self, inv: RawInventory) -> None:
        self._inv = inv
        self._merged: dict[str, dict[str, Any]] = {h: inv.merged(h)[0] for h in inv.hosts}
        self._cache: dict[tuple[str | None, str], Any] = {}
        self._active: list[tuple[str | None, str]] = []
        self._groups = inv.group_hosts()
        self.hostvars = _HostVars(self)
        self._deadline = time.monotonic() + TIME_BUDGET

    def raw(self, host: str | None) -> dict[str, Any]:
        return self._merged[host] if host is not None else self._inv.all_vars

    def get(self, host: str | None, key: str) -> Any:
        """Resolved value of `key` for `host` (None = the `all` group context)."""
        slot = (host, key)
        if slot in self._cache:
            return self._cache[slot]
        if slot in self._active:
            chain = " -> ".join(k for _, k in self._active[self._active.index(slot):]) + f" -> {key}"
            raise TemplateError(f"expressions refer to each other in a loop: {chain}")
        raw = self.raw(host)
        if key not in raw:
            raise KeyError(key)
        self._active.append(slot)
        try:
            value = self.render(host, raw[key])
        finally:
            self._active.pop()
        self._cache[slot] = value
        return value

    def render(self, host: str | None, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.render(host, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(host, v) for v in value]
        if not is_template(value):
            return value
        if time.monotonic() > self._deadline:
            raise TemplateError(f"the inventory's expressions took more than {TIME_BUDGET:.0f} s to resolve; "
                                "simplify them")
        try:
            template = _ENV.from_string(value)
            ctx = template.new_context(vars=_Vars(self, host), shared=True)  # type: ignore[arg-type]
            out: list[str] = []
            size = 0
            for piece in template.root_render_func(ctx):
                size += len(piece)
                if size > MAX_OUTPUT:
                    raise TemplateError(f"the value of this expression is over {MAX_OUTPUT} characters")
                out.append(piece)
            return "".join(out)
        except TemplateError:
            raise
        except MemoryError:
            raise TemplateError("the expression needs too much memory") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"cannot resolve {value!r}: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"invalid expression {value!r}: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"expression not allowed {value!r}: {exc}") from None
        except (TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError,
                jinja2.TemplateError, RecursionError) as exc:
            raise TemplateError(f"cannot resolve {value!r}: {exc}") from None


class _Vars(Mapping[str, Any]):
    """Jinja's view of one host's variables (plus the magic ones), resolved on access."""

    def __init__(self, resolver: Resolver, host: str | None) -> None:
        self._r = resolver
        self._host = host

    def _magic(self) -> dict[str, Any]:
        return {
            "hostvars": self._r.hostvars,
            "groups": self._r._groups,
            "inventory_hostname": self._host if self._host is not None else "",
        }

    def __getitem__(self, key: str) -> Any:
        magic = self._magic()
        if key in magic:
            return magic[key]
        try:
            return self._r.get(self._host, key)
        except KeyError:
            if self._host is None and any(key in vars_ for vars_ in self._r._merged.values()):
                raise TemplateError(
                    f"'{key}' is a host variable; a tenant-wide value cannot use it directly "
                    f"(write hostvars['<host>'].{key})"
                ) from None
            raise

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self._magic() or key in self._r.raw(self._host):
            return True
        # Jinja asks `in` before `[]`: claim a host variable in the tenant context so that __getitem__
        # can explain that it needs hostvars (instead of a bare "is undefined").
        return self._host is None and any(key in vars_ for vars_ in self._r._merged.values())

    def __iter__(self) -> Iterator[str]:
        yield from self._magic()
        yield from self._r.raw(self._host)

    def __len__(self) -> int:
        return len(self._r.raw(self._host)) + 3


class _HostVars(Mapping[str, Any]):
    def __init__(self, resolver: Resolver) -> None:
        self._r = resolver

    def __getitem__(self, host: str) -> Any:
        if host not in self._r._merged:
            raise TemplateError(
                f"hostvars['{host}']: no host named '{host}' in this inventory "
                f"(hosts: {', '.join(self._r._merged) or 'none'})"
            )
        return _HostView(self._r, host)

    def __contains__(self, host: object) -> bool:
        return host in self._r._merged

    def __iter__(self) -> Iterator[str]:
        return iter(self._r._merged)

    def __len__(self) -> int:
        return len(self._r._merged)


class _HostView(Mapping[str, Any]):
    def __init__(self, resolver: Resolver, host: str) -> None:
        self._r = resolver
        self._host = host

    def __getitem__(self, key: str) -> Any:
        try:
            return self._r.get(self._host, key)
        except KeyError:
            raise TemplateError(f"hostvars['{self._host}'] has no variable '{key}'") from None

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._r.raw(self._host))

    def __len__(self) -> int:
        return len(self._r.raw(self._host))
