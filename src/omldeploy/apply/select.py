"""Narrow a bundle to some components (per-component actions such as `--action=redis`)."""

from __future__ import annotations

from collections.abc import Callable

from omldeploy.render.bundle import Bundle, HostBundle, UnitPlan


def select(bundle: Bundle, action: str) -> Bundle:
    """Units whose component declares `action` among its groups (or is named so), with their files."""
    return select_units(bundle, lambda u: action in u.groups or u.name == action)


def select_using(bundle: Bundle, folder: str) -> Bundle:
    """Units that restart when a file under `folder` changes (`certs renew`: the TLS users), with their files."""
    return select_units(bundle, lambda u: any(p.startswith(folder.rstrip("/") + "/") for p in u.files))


def select_units(bundle: Bundle, keep: Callable[[UnitPlan], bool]) -> Bundle:
    out = Bundle(bundle.tenant, bundle.layout)
    for hb in bundle.hosts:
        units = [u for u in hb.units if keep(u)]
        if not units:
            continue
        keep_files = {p for u in units for p in u.files}
        names = {u.name for u in units}
        files = [f for f in hb.files if f.path in keep_files or f.component in names]
        sub = HostBundle(hb.host, hb.address, hb.port, hb.lan_ip, hb.roles, hb.unit_style, files, units,
                         [h for h in hb.host_units if any(f.path.endswith("/" + h) for f in files)],
                         hb.directories)
        sub.partial = True
        if hb.calls and names & set(hb.calls["units"]):
            sub.calls = hb.calls  # a unit on the voice path restarts: wait for the calls as a full run does
        out.hosts.append(sub)
    return out
