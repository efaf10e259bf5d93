"""Tenant → Bundle: runs every placed component's declaration through the unit/env renderers.

Pure apart from reading (and on first use creating) the tenant's generated material, so the same
inventory and material always give byte-identical files. Every file built from a secret (found by
construction, see render/taint.py) is flagged secret and checked to be mode 0600 before the bundle is
returned.
"""

from __future__ import annotations

from dataclasses import asdict

from omldeploy.components.base import Component, envfile
from omldeploy.components.context import Ctx
from omldeploy.inventory.model import Tenant
from omldeploy.placement import Placement, place
from omldeploy.render import acme, firewall, material, oml_manage, taint, units
from omldeploy.render.backup_schedule import ScheduleError, add_schedule
from omldeploy.render.bundle import Bundle, BundleFile, HostBundle, UnitPlan

CERT_DIR = "/etc/omnileads/certs"
CERT_USERS = ("nginx", "kamailio", "haproxy")


class RenderError(Exception):
    """A rendering invariant failed (a bug, or an inventory the rules did not catch)."""


def render_tenant(tenant: Tenant) -> Bundle:
    secrets = material.tenant_secrets(tenant.folder)
    bundle, tls = _render_bundle(tenant, secrets, None)
    # secret-ness by construction: the files that change when every secret changes (render/taint.py)
    shadow, _ = _render_bundle(taint.canary_tenant(tenant), taint.canary_secrets(secrets), tls)
    problems = taint.mark_secret_files(bundle, shadow)
    if problems:
        raise RenderError("built from a secret but not private (0600): " + ", ".join(problems))
    return bundle


def _render_bundle(tenant: Tenant, secrets: dict[str, str], tls: material.TLSMaterial | None
                   ) -> tuple[Bundle, material.TLSMaterial | None]:
    """One render; `tls` given: reuse it (the shadow render must not touch the PKI)."""
    placement = place(tenant, secrets)
    bundle = Bundle(tenant.name, tenant.layout.name)
    if tls is None and any(c.name in CERT_USERS for comps in placement.by_host.values() for c in comps):
        tls = material.tls_material(tenant.folder, acme.material_mode(tenant), _sans(tenant, placement))
    for host in tenant.hosts:
        bundle.hosts.append(_render_host(placement.ctx(host), placement, tls))
    try:
        add_schedule(tenant, bundle)
    except ScheduleError as exc:
        raise RenderError(str(exc)) from None
    return bundle, tls


def _sans(tenant: Tenant, placement: Placement) -> list[str]:
    f = placement.facts
    names = {"localhost", "127.0.0.1", f.application_host}
    if tenant.settings.has("fqdn"):
        names.add(tenant.settings.text("fqdn"))
    if tenant.settings.opt("infra_env") == "cloud":
        names.add(f.omni_ip_wan)
    for h in tenant.hosts:
        if h.roles & {"aio", "app", "haproxy"}:
            names.update({h.lan_ip, h.address})
    return sorted(n for n in names if n)


def _render_host(ctx: Ctx, placement: Placement, tls: material.TLSMaterial | None) -> HostBundle:
    t = ctx.tenant
    host = ctx.host
    style = t.settings.text("podman_unit_style")
    hb = HostBundle(host.name, host.address, host.port, host.lan_ip, tuple(sorted(host.roles)), style)
    comps = placement.by_host[host.name]
    names = [c.name for c in comps]
    hb.directories.append(("/etc/omnileads", 0o755))

    cert_files: list[str] = []
    if tls is not None and any(n in CERT_USERS for n in names):
        hb.directories.append((CERT_DIR, 0o755))
        boot = acme.bootstrap_only(t)  # certs: acme: lego's pair replaces these on the host
        hb.add(BundleFile(f"{CERT_DIR}/cert.pem", tls.cert_pem, 0o644, kind="cert", only_if_missing=boot))
        hb.add(BundleFile(f"{CERT_DIR}/key.pem", tls.key_pem, 0o600, secret=True, kind="cert", only_if_missing=boot))
        cert_files = [f"{CERT_DIR}/cert.pem", f"{CERT_DIR}/key.pem"]
        if tls.ca_pem is not None:
            hb.add(BundleFile(f"{CERT_DIR}/ca.pem", tls.ca_pem, 0o644, kind="cert"))
            cert_files.append(f"{CERT_DIR}/ca.pem")
        if "haproxy" in names:
            hb.add(BundleFile(f"{CERT_DIR}/hap.pem", tls.cert_pem + tls.key_pem, 0o600, secret=True, kind="cert"))
            cert_files.append(f"{CERT_DIR}/hap.pem")

    _check_ports(host.name, comps, ctx)
    for comp in comps:
        hb.units.append(_render_component(comp, ctx, hb, names, cert_files))
        drain = comp.drain(ctx)
        if drain is not None:
            hb.drain = {"state_file": drain.state_file, "seen_dir": drain.seen_dir, "peers": list(drain.peers),
                        "port": drain.port, "timeout": drain.timeout}
        hb.directories.extend(d for d in comp.host_directories(ctx) if d not in hb.directories)
        for hu in comp.host_units(ctx):
            hb.add(BundleFile(f"/etc/systemd/system/{hu.name}", hu.content.encode(), 0o644, kind="hostunit",
                              component=comp.name))
            if hu.name not in hb.host_units:
                hb.host_units.append(hu.name)
    # a unit on the voice path restarts only after the tenant's calls ended (or voice_drain_timeout):
    # counted by whichever component here knows the AMI account (Asterisk itself, or Django beside Kamailio).
    # Not in HA: the rolling run restarts the passive node first and the voice VIP moves before the active
    # one restarts, so waiting there would only hold every upgrade for the timeout on a busy cluster
    droppers = [c.name for c in comps if c.drops_calls]
    counter = next((c for c in (comp.call_counter(ctx) for comp in comps) if c is not None), None)
    if droppers and counter is not None and t.settings.num("voice_drain_timeout") > 0 \
            and t.layout.shape.value != "ha":
        hb.calls = {"env_file": counter.env_file, "address": counter.address, "port": counter.port,
                    "timeout": t.settings.num("voice_drain_timeout"), "units": droppers}
    if "asterisk" in names:
        hb.directories.append(("/etc/asterisk/custom", 0o755))
    # /run is empty after a reboot; bind-mount sources the components declare there must exist before
    # the containers start at boot: systemd-tmpfiles recreates them
    run_dirs = [d for d, _mode in hb.directories if d.startswith("/run/omnileads/")]
    if run_dirs:
        hb.add(BundleFile("/etc/tmpfiles.d/omldeploy.conf",
                          "".join(f"d {d} 0755 root root -\n" for d in run_dirs).encode(), 0o644))
    hb.add(BundleFile("/usr/local/bin/oml_manage", oml_manage.render(t.name, host.name, names).encode(),
                      0o755, kind="script"))
    if firewall.enabled(t):
        try:
            hb.firewall = firewall.ruleset(ctx, comps)
        except ValueError as exc:
            raise RenderError(f"{host.name}: firewall: {exc}") from None
    return hb


def _render_component(comp: Component, ctx: Ctx, hb: HostBundle, names: list[str],
                      cert_files: list[str]) -> UnitPlan:
    t = ctx.tenant
    files: list[str] = []
    env = comp.env(ctx)
    if comp.env_file and (env or comp.owns_env_file):
        hb.add(BundleFile(comp.env_file, envfile(env).encode(), 0o600, kind="env", component=comp.name))
    if comp.env_file:
        files.append(comp.env_file)
    for cfg in comp.configs(ctx):
        hb.add(BundleFile(cfg.dest, cfg.content.encode(), cfg.mode, secret=cfg.secret,
                          only_if_missing=cfg.only_if_missing, kind="config", component=comp.name, owner=cfg.owner))
        if not cfg.only_if_missing:
            files.append(cfg.dest)
    volumes = comp.volumes(ctx)
    hb.volumes.extend(v.source for v in volumes if not v.source.startswith("/") and v.source not in hb.volumes)
    if any(v.source == "/etc/omnileads/certs" for v in volumes):
        files.extend(cert_files)
    after = tuple(d for d in comp.depends_on if d in names)
    spec = units.UnitSpec(
        name=comp.name,
        description=comp.description,
        container=comp.container,
        image=comp.image_ref(ctx),
        env_file=comp.env_file,
        volumes=tuple(v.spec() for v in volumes),
        capabilities=comp.capabilities,
        options=tuple(comp.podman_options(ctx)),
        args=tuple(comp.args(ctx)),
        after=after,
        wanted_by=comp.wanted_by,
        enabled=comp.enabled(ctx),
        exec_start_pre=tuple(tuple(argv) for argv in comp.exec_start_pre(ctx)),
        runtime_env_files=tuple(comp.runtime_env_files(ctx)),
    )
    style = hb.unit_style
    if style in ("classic", "auto"):
        path = f"/etc/systemd/system/{comp.name}.service"
        hb.add(BundleFile(path, units.classic(spec, t.name).encode(), 0o644, kind="unit", component=comp.name))
        files.append(path)
    if style in ("quadlet", "auto"):
        path = f"/etc/containers/systemd/{comp.name}.container"
        hb.add(BundleFile(path, units.quadlet(spec, t.name).encode(), 0o644, kind="quadlet", component=comp.name))
        files.append(path)
    return UnitPlan(
        name=comp.name,
        container=comp.container,
        image=spec.image,
        enabled=comp.enabled(ctx),
        start_order=comp.order(ctx),
        after=after if comp.follows_restarts else (),  # the restart cascade on the host (units.py orders)
        health=asdict(comp.health(ctx)),
        env_file=comp.env_file,
        files=tuple(files),
        groups=comp.groups,
        pre_start=tuple(comp.pre_start(ctx)),
        post_start=tuple(comp.post_start(ctx)),
        hook_images=tuple(comp.hook_images(ctx)),
    )


def _check_ports(host: str, comps: list[Component], ctx: Ctx) -> None:
    """Two components of one host must not listen on the same port (all use host networking)."""
    owners: dict[tuple[int, str], str] = {}
    for comp in comps:
        for port in comp.ports(ctx):
            key = (port.number, port.proto)
            if key in owners:
                raise RenderError(f"{host}: {comp.name} and {owners[key]} both listen on {port.number}/{port.proto}")
            owners[key] = comp.name
