"""Resolve the Jinja expressions seed inventories contain, the way Ansible would, without `eval`.

Seed inventories say things like `data_host: "{{ hostvars['omnileads_aio'].omni_ip_lan }}"`. We
evaluate them with Jinja2's sandboxed environment (the engine Ansible's templating is built on), with
`hostvars`, `groups` and `inventory_hostname` available, lazily and with cycle detection. Values stay
strings, as in an Ansible template; typing happens afterwards against the schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from omldeploy.inventory.groups import RawInventory


class TemplateError(Exception):
    """An expression could not be resolved; the message says why in operator terms."""


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox plus a cap on arithmetic that could hang validation (`{{ 9**9**9 }}`, `'x' * 10**9`)."""

    intercepted_binops = frozenset(["**", "*"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise TemplateError("exponent too large in an inventory expression")
        if operator == "*" and (isinstance(left, str | list) or isinstance(right, str | list)):
            count = right if isinstance(right, int) else left if isinstance(left, int) else 0
            if isinstance(count, int) and count > 10_000:
                raise TemplateError("repetition too large in an inventory expression")
        return super().call_binop(context, operator, left, right)


def _ansible_env() -> SandboxedEnvironment:
    env = _BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    # The few Ansible filters that inventories use in practice.
    env.filters["bool"] = _to_bool
    env.filters["mandatory"] = lambda v: v
    env.filters["quote"] = lambda v: "'" + str(v).replace("'", "'\"'\"'") + "'"
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
        try:
            template = _ENV.from_string(value)
            ctx = template.new_context(vars=_Vars(self, host), shared=True)  # type: ignore[arg-type]
            return "".join(template.root_render_func(ctx))
        except TemplateError:
            raise
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
