"""Typing of single values against their schema kind (one function per kind, one error text each)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from omldeploy.catalog.releases import REPO_TAG
from omldeploy.inventory.schema import Key

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
# `\Z`, never `$`: `$` also matches before a final newline, which would let "eth0\n" through
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_NIC = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}\Z")
_URL = re.compile(r"^https?://[^\s/@]+(:\d+)?(/\S*)?\Z")
# an endpoint lands in YAML configs (Prometheus remote_write, Promtail clients): a DNS name or IPv4
# address, a port, a plain path; nothing that could quote, escape or template
_ENDPOINT = re.compile(r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?\Z")
_DURATION = re.compile(r"^([1-9][0-9]{0,5})(h|d|w)\Z")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class BadValue(ValueError):
    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


def coerce(key: Key, value: Any, literal: str | None) -> Any:
    """Return the typed value or raise BadValue. `literal` is the YAML text when it was a plain scalar."""
    fn = _KINDS[key.kind]
    return fn(key, value, literal)


def _text(value: Any, literal: str | None) -> str:
    if literal is not None and not isinstance(value, str):
        return literal  # keep what the operator typed: 230210.10 stays "230210.10"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise BadValue("must be a single value, not a mapping or list", "a string")
    return str(value)


def _str(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal)
    if "\n" in text or "\r" in text:
        raise BadValue("must be on one line (it is written into env files)", "a one-line string")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        # NUL cuts a C string short, U+2028/2029 are line breaks to YAML and JavaScript, the other control
        # and format characters are invisible in every file they land in
        raise BadValue("contains a control or invisible character (NUL, tab, U+2028, ...)",
                       "printable characters on one line")
    return text


def _version(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    if not (_TAG.match(text) or REPO_TAG.match(text)):
        raise BadValue("is not a valid image tag",
                       "letters, digits, '_', '.', '-' (e.g. 230204.01 or 1.27.1), or repository:tag "
                       "(e.g. library/postgres:14.9-bullseye)")
    return text


def _int(key: Key, value: Any, literal: str | None) -> int:
    if isinstance(value, bool):
        raise BadValue("must be a number", "an integer")
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        raise BadValue("must be a number", "an integer") from None
    if number < 0:
        raise BadValue("must not be negative", "an integer >= 0")
    return number


def _bool(key: Key, value: Any, literal: str | None) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadValue("must be true or false", "true, false")


def _marker(key: Key, value: Any, literal: str | None) -> bool:
    return True  # the seed tests markers with `is defined`: any value means "set"


def _ip(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise BadValue("is not an IPv4 address", "a dotted IPv4 address such as 10.10.10.2") from None


def _host(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.match(text) or text.replace(".", "").isdigit():
        raise BadValue("is not an IP address or host name", "an IP address or a DNS name")
    return text


def _url(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    if "@" in text.split("//", 1)[-1].split("/", 1)[0]:
        raise BadValue("must not hold credentials (user:password@): they would be printed and logged; "
                       "use bucket_access_key and bucket_secret_key", "http(s)://host[:port] or the word aws")
    if text == "aws" or _URL.match(text):
        return text.rstrip("/")
    raise BadValue("is not a bucket URL", "http(s)://host[:port] or the word aws")


def _endpoint(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    allowed = "http(s)://host[:port][/path] (letters, digits, '.', '-', '_', '~', '/' in the path)"
    if "@" in text.split("//", 1)[-1].split("/", 1)[0]:
        raise BadValue("must not hold credentials (user:password@): they would be printed and logged; use "
                       "the matching _user and _password keys", allowed)
    m = _ENDPOINT.match(text)
    if not m or (m.group(2) and not 0 < int(m.group(2)[1:]) < 65536):
        raise BadValue("is not an http(s) URL", allowed)
    return text.rstrip("/")


DURATION_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def duration_hours(text: str) -> int:
    """Hours in a validated duration (`720h`, `30d`, `2w`)."""
    m = _DURATION.match(text)
    assert m is not None, text
    return int(m.group(1)) * DURATION_HOURS[m.group(2)]


def _duration(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    if not _DURATION.match(text):
        raise BadValue("is not a duration", "a whole number of hours, days or weeks: 720h, 30d, 2w")
    if duration_hours(text) > 24 * 365 * 20:
        raise BadValue("is longer than 20 years", "a duration up to 20 years")
    return text


def _enum(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    if text not in key.choices:
        raise BadValue("is not one of the allowed values", ", ".join(key.choices))
    return text


def _email(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    if not _EMAIL.match(text):
        raise BadValue("is not an e-mail address", "name@domain")
    return text


def _cidr(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    try:
        return str(ipaddress.IPv4Network(text, strict=False))
    except ValueError:
        raise BadValue("is not a network", "CIDR such as 172.16.101.0/24") from None


#: an allow-list longer than this is almost certainly a mistake (and would make a huge ruleset)
MAX_SOURCES = 256


def _sources(key: Key, value: Any, literal: str | None) -> tuple[str, ...]:
    """A YAML list (or a comma-separated string) of IPv4 addresses or networks, each strictly valid:
    a network with host bits set (10.0.0.1/24) is refused rather than guessed, since the operator may
    have meant the single address. They land in an nftables ruleset, so nothing else may pass."""
    allowed = "a list of IPv4 addresses or networks, e.g. [203.0.113.7, 198.51.100.0/24]"
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        items = [i for i in value.split(",")]
    else:
        raise BadValue("must be a list of addresses", allowed)
    if len(items) > MAX_SOURCES:
        raise BadValue(f"has {len(items)} entries, more than {MAX_SOURCES}", allowed)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or isinstance(item, bool):
            raise BadValue(f"entry {item!r} is not an address", allowed)
        text = item.strip()
        if not text:
            raise BadValue("has an empty entry", allowed)
        try:
            net = ipaddress.IPv4Network(text, strict=True)
        except ValueError:
            shown = text if len(text) <= 64 and text.isprintable() else repr(text[:64])
            raise BadValue(f"entry '{shown}' is not an IPv4 address or network (no host bits after the /)",
                           allowed) from None
        spec = str(net.network_address) if net.prefixlen == 32 else str(net)
        if spec not in out:
            out.append(spec)
    return tuple(out)


def _nic(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    if not _NIC.match(text):
        raise BadValue("is not a network interface name", "e.g. eth0, ens18")
    return text


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    try:
        import zoneinfo

        return frozenset(zoneinfo.available_timezones())
    except Exception:  # pragma: no cover - no tz database on the controller
        return frozenset()


def _tz(key: Key, value: Any, literal: str | None) -> str:
    text = _text(value, literal).strip()
    zones = _zones()
    if zones and text not in zones and text != "UTC":
        raise BadValue("is not a known time zone", "an IANA name such as America/Argentina/Cordoba or UTC")
    return text


_KINDS: dict[str, Callable[[Key, Any, str | None], Any]] = {
    "str": _str,
    "version": _version,
    "int": _int,
    "bool": _bool,
    "marker": _marker,
    "ip": _ip,
    "host": _host,
    "url": _url,
    "endpoint": _endpoint,
    "duration": _duration,
    "enum": _enum,
    "email": _email,
    "cidr": _cidr,
    "nic": _nic,
    "sources": _sources,
    "tz": _tz,
}


def witnesses(spec: str | None) -> list[tuple[str, int] | str]:
    """Parse `ha_witness`: (host, port) pairs, or a problem text for an entry that is not one."""
    out: list[tuple[str, int] | str] = []
    if not spec:
        return out
    for raw in spec.split(","):
        item = raw.strip()
        host, _, port_text = item.partition(":") if item.count(":") == 1 else (item, "", "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", host):
            out.append(f"'{item}' is not a host or host:port")
            continue
        try:
            port = int(port_text) if port_text else 22
        except ValueError:
            out.append(f"'{item}' has a port that is not a number")
            continue
        if not 0 < port < 65536:
            out.append(f"'{item}' has a port out of 1-65535")
            continue
        out.append((host, port))
    return out
