"""inventory.yml → typed `Tenant`, collecting every problem before giving up."""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path
from typing import Any

from omldeploy.catalog.releases import find_release, images, releases
from omldeploy.inventory import groups as groups_mod
from omldeploy.inventory.model import Host, Layout, Settings, Shape, Tenant
from omldeploy.inventory.names import address_problem
from omldeploy.inventory.problems import InventoryError, Problems
from omldeploy.inventory.schema import HOST, KEYS, MARKERS, TENANT, VERSION_KEYS, is_connection_key
from omldeploy.inventory.templating import Resolver, TemplateError
from omldeploy.inventory.values import BadValue, coerce
from omldeploy.inventory.vault import VAULT_FILE, VaultError, merge_vault_file
from omldeploy.inventory.yamlsource import Document, YamlSyntaxError, load

HA_GROUP_ROLES = {
    "omnileads_aio": "aio",  # upstream HEAD lists its all-in-one hosts in this group
    "omnileads_data": "data",
    "omnileads_voice": "voice",
    "omnileads_app": "app",
    "omnileads_haproxy": "haproxy",
}
#: two-node HA (HEAD): each all-in-one node runs every role of a pair
TWO_NODE_ROLES = frozenset({"data", "voice", "app"})
#: upstream HEAD names of seed keys: HEAD name -> seed name (what the rest of omldeploy reads)
HEAD_ALIASES = {
    "postgres_rw_vip": "postgres_host",
    "postgres_ro_vip": "postgres_ro_host",
    "omnileads_vip": "voice_host",
}
MARKER_ROLES = {
    "omlaio": "aio",
    "omldata": "data",
    "omlvoice": "voice",
    "omlapp": "app",
    "omlhaproxy": "haproxy",
    "postgres_host_ha": "data",
}


def load_tenant(folder: Path, name: str | None = None) -> Tenant:
    """Load `folder/inventory.yml`; raise InventoryError listing every problem found."""
    path = folder / "inventory.yml"
    problems = Problems(path)
    from omldeploy.inventory.private_files import secure

    secure(folder)  # a git clone leaves the secret material 0644 (issue 12)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add("(file)", "inventory file not found",
                     allowed="instances/<tenant>/inventory.yml (create one with `omldeploy tenant new`)")
        raise InventoryError(problems.items) from None
    except (OSError, UnicodeDecodeError) as exc:
        problems.add("(file)", f"cannot read the inventory: {exc}")
        raise InventoryError(problems.items) from None
    return load_text(text, path, folder, name or folder.name, problems)


def load_text(text: str, path: Path, folder: Path, name: str, problems: Problems | None = None) -> Tenant:
    problems = problems or Problems(path)
    try:
        doc = load(text)
    except YamlSyntaxError as exc:
        problems.add("(yaml)", f"not valid YAML: {exc}", line=exc.line)
        raise InventoryError(problems.items) from None
    except VaultError as exc:
        problems.add(exc.key, str(exc), line=exc.line)
        raise InventoryError(problems.items) from None
    _vaulted_keys(doc, problems)
    before = len(problems.errors)
    merge_vault_file(doc, folder / VAULT_FILE, problems)
    if len(problems.errors) > before:  # the inventory would only add "missing password" noise
        raise InventoryError(problems.items)
    for parent, dup in doc.duplicates:
        key = ".".join((*parent, dup.key))
        if dup.same_value:
            problems.warn(key, "written twice with the same value", line=dup.line)
        else:
            problems.add(key, "written twice with different values; the last one would silently win",
                         line=dup.line)
    raw = groups_mod.parse(doc, problems)
    tenant = _build(raw, doc, path, folder, name, problems)
    if problems.errors or tenant is None:
        raise InventoryError(problems.items)
    return tenant


def _vaulted_keys(doc: Document, problems: Problems) -> None:
    """Only secrets may be `!vault` encrypted: a decrypted value must land where every secret does (the
    redaction and the shadow render of render/taint.py know it by its key), never in a plain setting."""
    from omldeploy.inventory.schema import SECRET_KEYS

    for path in sorted(doc.vaulted):
        key = path[-1] if path else ""
        if key in SECRET_KEYS or (is_connection_key(key) and "pass" in key):
            continue
        problems.add(".".join(path), "is encrypted with Ansible Vault but is not a secret setting; only "
                     "secrets may be vaulted", line=doc.key_lines.get(path),
                     allowed="the password keys (postgres_password, ami_password, ...) or ansible_*pass*")


def _suggest(key: str) -> str:
    names = [k for k in KEYS] + ["ansible_host", "ansible_ssh_port", "ansible_user", "ansible_port"]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    if not close:
        lowered = {k.lower(): k for k in names}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    return f" — did you mean `{close[0]}`?" if close else ""


def _typed(
    key: str, value: Any, origin_path: tuple[str, ...], doc: Document, resolver: Resolver, host: str | None,
    problems: Problems, tenant_wide: bool = False,
) -> tuple[bool, Any]:
    """Resolve templates and coerce one value (templates resolved as `host` sees them). Returns (ok, value)."""
    spec = KEYS[key]
    label = f"{host}.{key}" if host is not None and not tenant_wide else key  # host keys name their host
    line = doc.key_lines.get(origin_path)
    scalar = doc.scalars.get(origin_path)
    try:
        resolved = resolver.get(host, key)
    except TemplateError as exc:
        # a message may quote the expression, which for a secret is (part of) the secret
        message = "is an expression that cannot be resolved (secret, not shown)" if spec.secret else str(exc)
        problems.add(label, message, line=line)
        return False, None
    literal = scalar.text if scalar is not None and scalar.plain and resolved is value else None
    if spec.kind == "marker":
        return True, True
    if resolved is None and literal and spec.kind == "str":
        resolved = literal  # `google_maps_api_key: NULL` in seed templates means the text NULL
    if resolved is None or (isinstance(resolved, str) and resolved.strip() == ""):
        problems.add(label, "is present but empty (the seed would render the text 'None'); "
                          "set a value or remove the line", line=line, allowed=_allowed(key))
        return False, None
    try:
        return True, coerce(spec, resolved, literal)
    except BadValue as exc:
        problems.add(label, str(exc), line=line, found=resolved, allowed=exc.allowed)
        return False, None


def _allowed(key: str) -> str:
    spec = KEYS[key]
    if spec.choices:
        return ", ".join(spec.choices)
    return {"version": "an image tag", "ip": "an IPv4 address", "host": "an IP or DNS name",
            "int": "an integer", "bool": "true or false", "url": "a URL or aws"}.get(spec.kind, spec.kind)


def _build(
    raw: groups_mod.RawInventory, doc: Document, path: Path, folder: Path, name: str, problems: Problems
) -> Tenant | None:
    resolver = Resolver(raw)
    all_path = raw.groups["all"].vars_path if "all" in raw.groups else ("all", "vars")
    values: dict[str, Any] = {}

    for key, value in raw.all_vars.items():
        kpath = (*all_path, key)
        line = doc.key_lines.get(kpath)
        if is_connection_key(key):
            continue
        spec = KEYS.get(key)
        if spec is None:
            problems.add(key, f"unknown variable{_suggest(key)}", line=line)
            continue
        if spec.scope == HOST and key not in MARKERS:
            problems.add(key, "is a per-host setting; write it under the host (or its group), not all.vars",
                         line=line)
            continue
        if spec.unused:
            problems.warn(key, f"has no effect ({spec.note})", line=line)
            continue
        ok, typed = _typed(key, value, kpath, doc, resolver, None, problems)
        if ok:
            values[key] = typed

    whole = _whole_groups(raw)
    for group_name, first_host in whole.items():
        group = raw.groups[group_name]
        for key, value in group.vars.items():
            spec = KEYS.get(key)
            if spec is None or spec.scope != TENANT or is_connection_key(key):
                continue  # reported (or used) per host below
            kpath = (*group.vars_path, key)
            if spec.unused:
                problems.warn(key, f"has no effect ({spec.note})", line=doc.key_lines.get(kpath))
                continue
            ok, typed = _typed(key, value, kpath, doc, resolver, first_host, problems, tenant_wide=True)
            if ok:
                values[key] = typed
    _aliases(values, doc, all_path, problems)

    hosts: list[Host] = []
    for host_name, raw_host in raw.hosts.items():
        merged, origins = raw.merged(host_name)
        host_vals: dict[str, Any] = {}
        connection: dict[str, Any] = {}
        for key, value in merged.items():
            origin = origins[key]
            line = doc.key_lines.get(origin.path)
            if is_connection_key(key):
                try:
                    connection[key] = resolver.get(host_name, key)
                except TemplateError as exc:
                    problems.add(f"{host_name}.{key}", str(exc), line=line)
                continue
            spec = KEYS.get(key)
            if spec is None:
                if origin.level != "all":
                    problems.add(f"{host_name}.{key}", f"unknown variable{_suggest(key)}", line=line)
                continue
            if spec.scope == TENANT and origin.level.removeprefix("group:") in whole:
                continue  # tenant-wide in a group of every host (HEAD writes them so): read above
            if spec.scope == TENANT and origin.level != "all":
                problems.add(f"{host_name}.{key}",
                             "is a tenant-wide setting; write it once under all.vars", line=line)
                continue
            if spec.scope != HOST:
                continue
            ok, typed = _typed(key, value, origin.path, doc, resolver, host_name, problems)
            if ok:
                host_vals[key] = typed
            if spec.kind == "marker" and value is False:
                problems.warn(f"{host_name}.{key}", "is false, but a role marker counts when present "
                              "(as in the seed); remove the line to drop the role", line=line)
        hosts.append(_host(host_name, raw_host, host_vals, connection, doc, problems))

    if not raw.hosts:
        problems.add("all.hosts", "no hosts in the inventory",
                     allowed="at least one host with a role marker (omlaio, or omldata/omlvoice/omlapp)")
        return None
    layout = _layout(hosts, values, problems)
    if layout is None:
        return None
    if layout.two_node:
        hosts = [replace(h, roles=(h.roles - {"aio"}) | TWO_NODE_ROLES) if "aio" in h.roles else h for h in hosts]
    versions = _versions(values, layout, problems, doc, all_path)
    settings = Settings(values, frozenset(values))
    tenant = Tenant(name=name, folder=folder, inventory_path=path, layout=layout, hosts=tuple(hosts),
                    settings=settings, versions=versions)
    from omldeploy.inventory.rules import check

    check(tenant, problems, doc, all_path)
    if problems.errors:
        return None
    return Tenant(name=name, folder=folder, inventory_path=path, layout=layout, hosts=tuple(hosts),
                  settings=settings, versions=versions,
                  warnings=tuple(p.format() for p in problems.warnings))


def _whole_groups(raw: groups_mod.RawInventory) -> dict[str, str]:
    """Groups other than `all` whose hosts are every host of the inventory, least specific first, each
    with one of its hosts (to resolve templates). Upstream HEAD writes a tenant's settings as the vars
    of the tenant's group (`ha_instances: children: <tenant>: vars:`); for a one-tenant inventory that
    is the same as `all.vars`, so they are read as tenant-wide settings."""
    members = raw.group_hosts()
    everyone = set(raw.hosts)
    out: dict[str, str] = {}
    for group in sorted(raw.groups.values(), key=lambda g: (g.depth, g.name)):
        hosts = members.get(group.name, [])
        if group.name != "all" and group.vars and everyone and set(hosts) == everyone:
            out[group.name] = hosts[0]
    return out


def _aliases(values: dict[str, Any], doc: Document, all_path: tuple[str, ...], problems: Problems) -> None:
    """HEAD's names of seed settings: copied to the seed name (which the rest of omldeploy reads); both
    written with different values is an error, since one would silently win."""
    for head, seed in HEAD_ALIASES.items():
        if head not in values:
            continue
        if seed in values and values[seed] != values[head]:
            problems.add(head, f"contradicts {seed} (the same setting under its seed name)",
                         line=doc.key_lines.get((*all_path, head)), found=f"{values[head]} vs {values[seed]}",
                         allowed=f"write one of {head}, {seed}")
            continue
        values[seed] = values[head]
    if "omnileads_vip" in values and "application_host" not in values:
        values["application_host"] = values["omnileads_vip"]


def _host(
    name: str, raw: groups_mod.RawHost, vals: dict[str, Any], connection: dict[str, Any], doc: Document,
    problems: Problems,
) -> Host:
    roles = {MARKER_ROLES[m] for m in MARKERS if m in vals}
    roles |= {HA_GROUP_ROLES[g] for g in raw.groups if g in HA_GROUP_ROLES}
    lan = vals.get("omni_ip_lan")
    line = doc.key_lines.get(raw.own_path)
    if lan is None and "omni_ip_lan" not in raw.own_vars and roles:
        problems.add(f"{name}.omni_ip_lan", "missing: every host needs its private (LAN) address", line=line,
                     allowed="an IPv4 address")
    address_raw = connection.get("ansible_host", name)
    if address_raw is None or isinstance(address_raw, dict | list) or not str(address_raw).strip():
        # `ansible_host:` left blank would make SSH go to the literal host "None"
        problems.add(f"{name}.ansible_host", "is empty or not a single address", line=line,
                     found=address_raw, allowed="the host's SSH address (an IP or DNS name)")
    address = str(address_raw)
    if "ansible_host" in connection and address_raw is not None and not isinstance(address_raw, dict | list) \
            and address.strip() and address_problem(address) is not None:
        # it also lands in the server certificate's names and in the runner inventory
        problems.add(f"{name}.ansible_host", str(address_problem(address)), line=line, found=address_raw,
                     allowed="the host's SSH address (an IP or DNS name)")
    port_raw = connection.get("ansible_port", connection.get("ansible_ssh_port", 22))
    try:
        port = int(str(port_raw))
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        port_key = "ansible_port" if "ansible_port" in connection else "ansible_ssh_port"  # the name written
        problems.add(f"{name}.{port_key}", "is not a TCP port", line=line, found=port_raw,
                     allowed="1-65535")
        port = 22
    ha_role = vals.get("ha_rol", vals.get("ha_role"))
    if "ha_rol" in vals and "ha_role" in vals and vals["ha_rol"] != vals["ha_role"]:
        problems.add(f"{name}.ha_role", "contradicts ha_rol (HEAD's and the seed's name of one setting)", line=line,
                     found=f"{vals['ha_role']} vs {vals['ha_rol']}", allowed="write one of ha_rol, ha_role")
    return Host(name=name, address=address, port=port, lan_ip=str(lan or ""), roles=frozenset(roles),
                ha_role=ha_role, groups=tuple(raw.groups), vars=vals, connection=connection)


def _layout(hosts: list[Host], values: dict[str, Any], problems: Problems) -> Layout | None:
    external_db = "postgres_host" in values
    external_bucket = "bucket_url" in values
    if "omnileads_ha" in values:
        aio = [h for h in hosts if "aio" in h.roles]
        if aio and len(aio) != len([h for h in hosts if h.roles]):
            problems.add("omnileads_ha", "mixes all-in-one hosts with data/voice/app/haproxy hosts",
                         found=", ".join(h.name for h in hosts if h.roles),
                         allowed="two all-in-one hosts (HEAD), or the seed's pairs of data, voice, app, haproxy")
            return None
        return Layout(Shape.HA, external_db=False, external_bucket=external_bucket, two_node=bool(aio))
    aio = [h for h in hosts if "aio" in h.roles]
    split = [h for h in hosts if h.roles & {"data", "voice", "app"}]
    if aio and split:
        problems.add("omlaio", "mixes an all-in-one host with data/voice/app hosts",
                     found=", ".join(h.name for h in aio + split), allowed="one layout per tenant")
        return None
    if aio:
        if len(aio) > 1:
            problems.add("omlaio", "more than one all-in-one host", found=", ".join(h.name for h in aio),
                         allowed="exactly one host with omlaio")
            return None
        return Layout(Shape.AIO, external_db, external_bucket)
    if split:
        complete = True  # judged on the markers only: earlier, unrelated errors must not hide the rules
        for role, marker in (("data", "omldata"), ("voice", "omlvoice"), ("app", "omlapp")):
            with_role = [h.name for h in hosts if role in h.roles]
            if len(with_role) != 1:
                complete = False
                problems.add(marker, f"an all-in-three layout needs exactly one {role} host",
                             found=", ".join(with_role) or "none",
                             allowed=f"one host with {marker}: true")
        if not complete:
            return None
        return Layout(Shape.AIT, external_db, external_bucket)
    problems.add("all.hosts", "no host carries a role marker, so the layout is unknown",
                 allowed="omlaio (all in one); omldata + omlvoice + omlapp (all in three); "
                         "omnileads_ha with HA groups")
    return None


def _versions(
    values: dict[str, Any], layout: Layout, problems: Problems, doc: Document, all_path: tuple[str, ...]
) -> dict[str, str]:
    """Image tags per tag key: explicit keys > omnileads_release > catalog defaults (infra images only).

    Optional images (fastagi, astami) and the cron's own tag get no default: they are in the result only
    when the release or the inventory names them, which is what places (or removes) their components."""
    out: dict[str, str] = {}
    release_name = values.get("omnileads_release")
    if release_name is not None:
        rel = find_release(str(release_name))
        if rel is None:
            known = ", ".join(r.name for r in releases())
            problems.add("omnileads_release", "is not in the bundled release catalog",
                         line=doc.key_lines.get((*all_path, "omnileads_release")), found=release_name,
                         allowed=known)
        else:
            if not rel.deployable:
                problems.add("omnileads_release", f"release {rel.name} cannot be deployed: {rel.refusal}",
                             line=doc.key_lines.get((*all_path, "omnileads_release")), found=release_name,
                             allowed=", ".join(r.name for r in releases() if r.deployable))
            out.update(rel.tags)
    for key in VERSION_KEYS:
        if key in values:
            out[key] = values[key]
        elif key not in out:
            if key == "postgres_version" and layout.external_db:
                continue
            if any(p.key == key for p in problems.errors):
                continue  # written with a rejected value, already reported: not "missing"
            problems.add(key, "missing: the image tag must be set (or name an omnileads_release)",
                         allowed="e.g. " + images()[_image_of(key)].default)
    for ref in images().values():
        if ref.tag_key in values:
            out[ref.tag_key] = values[ref.tag_key]
        if not ref.optional and ref.same_as is None:  # optional components deploy only when named
            out.setdefault(ref.tag_key, ref.default)
    return out


def _image_of(tag_key: str) -> str:
    for key, ref in images().items():
        if ref.tag_key == tag_key:
            return key
    raise KeyError(tag_key)
