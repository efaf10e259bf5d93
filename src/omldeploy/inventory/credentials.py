"""Credential checks: example placeholders are refused, weak passwords are warned about.

The bundled example inventories carry `CHANGE-ME-…` placeholders that `omldeploy tenant new` replaces
with random values. An inventory copied by hand keeps them, and a deployment would then run with
passwords anyone can read in this repository: that is an error. A weak password the operator chose is
only a warning (lab tenants are legitimate), and no message ever repeats the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from omldeploy.inventory.model import Tenant
from omldeploy.inventory.problems import Problems
from omldeploy.inventory.yamlsource import Document

PLACEHOLDER = re.compile(r"CHANGE-ME\b", re.IGNORECASE)
MIN_LENGTH = 12
ONE_CLASS_MIN_LENGTH = 20  # a single character class needs this many characters to be as strong
# Passwords (not identifiers such as bucket_access_key): the values an attacker would guess.
PASSWORD_KEYS = ("postgres_password", "s3_http_admin_pass", "ami_password", "dialer_password",
                 "bucket_secret_key", "email_password")
# Words weak passwords are built from: the usual ones plus what this product's own defaults suggest.
WORDS = frozenset((
    "password", "passwd", "pass", "admin", "administrator", "root", "toor", "user", "guest", "login",
    "welcome", "letmein", "secret", "changeme", "change", "default", "master", "qwerty", "asdf", "zxcv",
    "abc", "abcd", "iloveyou", "dragon", "monkey", "football", "omnileads", "omni", "leads", "oml",
    "postgres", "postgresql", "asterisk", "minio", "minioadmin", "demo", "demoadmin", "test", "wombat",
    "dialer", "kamailio", "redis", "django", "callcenter", "contact", "center", "bucket", "access", "key",
))
_LEET = str.maketrans("0134579@$!", "oleastgasi")


def placeholders(doc: Document, all_path: tuple[str, ...], problems: Problems) -> None:
    """Every scalar of the document still holding an example placeholder is an error."""
    for path, scalar in sorted(doc.scalars.items(), key=lambda kv: kv[1].line):
        if not PLACEHOLDER.search(scalar.text):
            continue
        problems.add(_key_name(path, all_path),
                     "still holds the example placeholder (CHANGE-ME-…): deploying it would use a "
                     "password published with omldeploy", line=scalar.line,
                     allowed="a real value; `omldeploy tenant new NAME --layout LAYOUT` writes an "
                             "inventory with random ones")


def _key_name(path: tuple[str, ...], all_path: tuple[str, ...]) -> str:
    """Name a key as the other problems do: tenant keys bare, host keys `host.key`."""
    if path[:-1] == all_path:
        return path[-1]
    if len(path) >= 3 and path[-3] == "hosts":
        return f"{path[-2]}.{path[-1]}"
    return ".".join(path)


def weak_passwords(tenant: Tenant, problems: Problems, line: Callable[[str], int | None]) -> None:
    """A warning per weak password, naming why (never the value)."""
    s = tenant.settings
    for key in PASSWORD_KEYS:
        if not s.has(key):
            continue
        value = s.text(key)
        if PLACEHOLDER.search(value):
            continue  # already an error
        reason = weakness(value)
        if reason:
            problems.warn(key, f"is a weak password: {reason}; use a long random value "
                               "(`omldeploy tenant new` generates them)", line=line(key))


def weakness(value: str) -> str | None:
    """Why `value` is a weak password, or None. Public so tests and `tenant new` can use it."""
    if len(value) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    lowered = value.lower()
    core = re.sub(r"^[^a-z]+|[^a-z]+$", "", lowered)  # leading/trailing digits and symbols: admin123!
    for variant in (re.sub(r"[^a-z]", "", lowered), re.sub(r"[^a-z]", "", core.translate(_LEET))):
        if variant == "" or _only_words(variant):
            return "made of dictionary words, digits and symbols only"
    if _repeats(value):
        return "a short pattern repeated"
    classes = _classes(value)
    if len(classes) == 1 and len(value) < ONE_CLASS_MIN_LENGTH:
        return (f"only {classes[0]} (mix letters, digits and symbols, or use at least "
                f"{ONE_CLASS_MIN_LENGTH} characters)")
    return None


_LONGEST_WORD = max(len(w) for w in WORDS)
_LONGEST_PATTERN = 64  # a repeated unit longer than this is not a guessable pattern


def _only_words(letters: str) -> bool:
    """Whether `letters` is one or more dictionary words glued together (e.g. adminpassword).

    Word break by dynamic programming: linear in the length (an inventory value is hostile input, and
    a recursive split of a long value would exhaust the stack)."""
    n = len(letters)
    ends = [True] + [False] * n  # ends[i]: letters[:i] splits into words
    for i in range(1, n + 1):
        ends[i] = any(ends[i - size] and letters[i - size:i] in WORDS
                      for size in range(1, min(_LONGEST_WORD, i) + 1))
    return ends[n]


def _repeats(value: str) -> bool:
    n = len(value)
    return any(n % size == 0 and value[:size] * (n // size) == value
               for size in range(1, min(n // 2, _LONGEST_PATTERN) + 1))


def _classes(value: str) -> list[str]:
    found = []
    for name, pattern in (("lowercase letters", r"[a-z]"), ("uppercase letters", r"[A-Z]"),
                          ("digits", r"[0-9]"), ("symbols", r"[^A-Za-z0-9]")):
        if re.search(pattern, value):
            found.append(name)
    return found
