"""How `certs: acme` changes the TLS files of the bundle.

The ACME certificate is issued on the nginx host (components/acme), so the controller never holds it.
Until it exists, nginx still needs a certificate to start: the tenant's self-signed pair is shipped as
a bootstrap, written only when the host has no certificate yet, so an install never puts the
self-signed pair back over the ACME one.
"""

from __future__ import annotations

from omldeploy.inventory.model import Tenant


def material_mode(tenant: Tenant) -> str:
    """The mode render/material.py generates: ACME bootstraps with the self-signed pair."""
    mode = tenant.settings.text("certs")
    return "selfsigned" if mode == "acme" else mode


def bootstrap_only(tenant: Tenant) -> bool:
    """cert.pem/key.pem are operator-owned after creation (only_if_missing): lego replaces them."""
    return tenant.settings.opt("certs") == "acme"
