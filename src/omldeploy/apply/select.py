"""Narrow a bundle to some components (per-component actions such as `--action=redis`)."""

from __future__ import annotations

from omldeploy.render.bundle import Bundle, HostBundle


def select(bundle: Bundle, action: str) -> Bundle:
    """Units whose component declares `action` among its groups (or is named so), with their files."""
    out = Bundle(bundle.tenant, bundle.layout)
    for hb in bundle.hosts:
        units = [u for u in hb.units if action in u.groups or u.name == action]
        if not units:
            continue
        keep_files = {p for u in units for p in u.files}
        names = {u.name for u in units}
        files = [f for f in hb.files if f.path in keep_files or f.component in names]
        sub = HostBundle(hb.host, hb.address, hb.port, hb.lan_ip, hb.roles, hb.unit_style, files, units,
                         [h for h in hb.host_units if any(f.path.endswith("/" + h) for f in files)],
                         hb.directories)
        sub.partial = True
        out.hosts.append(sub)
    return out
