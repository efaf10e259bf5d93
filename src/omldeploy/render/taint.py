"""Secret files by construction: a rendered file built from a secret is a secret file.

Searching the rendered files for the raw password text (the former check) misses every encoded form
(the postgres exporter's URL-encoded `DATA_SOURCE_NAME`, a JSON-escaped value, a hash) and flags
unrelated files when a password is a common word (`network` appears in many configs, which then
"held a secret" at mode 0644 and stopped `plan`).

Instead the tenant is rendered a second time with every secret replaced by a random canary. A file
whose bytes differ between the two renders was built from a secret, whatever the component did with
it (quote it, escape it, hash it, base64 it), so no component can forget to declare it: the data flow
decides, not a search and not a flag. Rendering is pure and cheap (milliseconds), so the shadow render
costs nothing that matters.
"""

from __future__ import annotations

import dataclasses
import secrets as pysecrets
from collections.abc import Mapping
from typing import Any

from omldeploy.inventory.model import Settings, Tenant
from omldeploy.render.bundle import Bundle

#: Values that stand for "no secret" (the seed's "no Google key" placeholder).
PLACEHOLDERS = frozenset({"", "null", "none"})


def is_real_secret(value: object) -> bool:
    return value is not None and str(value).strip().lower() not in PLACEHOLDERS


def _canary() -> str:
    # letters and digits only: it must survive any validation or escaping a component applies
    return "zQ" + pysecrets.token_hex(12)


def canary_tenant(tenant: Tenant) -> Tenant:
    """The same tenant with every inventory secret replaced by a fresh random canary."""
    from omldeploy.inventory.schema import SECRET_KEYS

    values: dict[str, Any] = {k: tenant.settings[k] for k in tenant.settings}
    for key in SECRET_KEYS:
        if tenant.settings.has(key) and is_real_secret(tenant.settings[key]):
            values[key] = _canary()
    return dataclasses.replace(tenant, settings=Settings(values, tenant.settings.explicit))


def canary_secrets(generated: Mapping[str, str]) -> dict[str, str]:
    """The tenant's generated secrets, each replaced by a canary of the same length when it is short
    (a component may cut a value to a protocol's limit, e.g. VRRP's 8 characters)."""
    out = {}
    for key, value in generated.items():
        canary = _canary()
        out[key] = canary[: len(value)] if 0 < len(value) < len(canary) else canary
        if out[key] == value:  # astronomically unlikely, but then the comparison would prove nothing
            out[key] = canary
    return out


def mark_secret_files(real: Bundle, shadow: Bundle) -> list[str]:
    """Flag as secret every file of `real` whose content differs in `shadow` (or is absent from it).

    Returns "host:path (mode)" for each secret file that would not be private (mode beyond 0600), for
    the caller to refuse: a rendering bug, never an inventory problem.
    """
    problems: list[str] = []
    shadow_hosts = {hb.host: hb for hb in shadow.hosts}
    for hb in real.hosts:
        other = shadow_hosts.get(hb.host)
        other_files = {f.path: f.content for f in other.files} if other is not None else {}
        for i, f in enumerate(hb.files):
            built_from_secret = f.secret or other_files.get(f.path) != f.content
            if not built_from_secret:
                continue
            if f.mode & 0o077:
                problems.append(f"{hb.host}:{f.path} ({f.mode:04o})")
            if not f.secret:
                hb.files[i] = dataclasses.replace(f, secret=True)
    return problems
