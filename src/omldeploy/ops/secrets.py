"""`omldeploy secrets init|rotate`: keep a tenant's passwords in an Ansible Vault and change them safely.

init moves every password written in inventory.yml into an encrypted `vault.yml` beside it and proves
the move changed nothing: the tenant is rendered before and after, and the two bundles must be
byte-identical, or both files are put back. Re-running it once done changes nothing.

rotate changes one secret end to end: a new random value, written where the secret lives (inventory.yml,
vault.yml or the tenant's generated secrets), set on the service that checks it, the tenant applied as
`install` does (so exactly the units whose rendered files use the secret restart), then verified (the
new secret is accepted, the old one refused, and each restarted unit passed its health check). The new value is saved in
`.omldeploy/rotation.yml` (0600) before anything changes, together with the old one, and both stay until
the verification passed: a rotation stopped halfway (host down, Ctrl-C) is finished by running the same
command again, which reuses the saved value instead of making a third one. No secret is ever printed,
logged or put in the ledger.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets as pysecrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omldeploy.inventory import vault as vault_mod
from omldeploy.inventory import vaultsource
from omldeploy.inventory.load import load_tenant
from omldeploy.inventory.model import Host, Tenant
from omldeploy.inventory.rewrite import RewriteError, set_tenant_keys
from omldeploy.inventory.schema import SECRET_KEYS
from omldeploy.inventory.state_errors import StateError, writing
from omldeploy.ops.converge import Reporter, redactor
from omldeploy.render import material
from omldeploy.render.bundle import Bundle
from omldeploy.state import ledger
from omldeploy.state.lock import tenant_lock

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
PENDING = Path(material.MATERIAL_DIR) / "rotation.yml"


class SecretsError(Exception):
    """Refused before anything changed (bad input or state); the message says what to do."""

    def __init__(self, message: str, code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------- init


def fingerprint(bundle: Bundle) -> dict[str, str]:
    """host:path -> digest of content and mode, plus each unit plan: what `init` must leave unchanged."""
    out: dict[str, str] = {}
    for hb in bundle.hosts:
        for f in hb.files:
            out[f"{hb.host}:{f.path}"] = hashlib.sha256(f.content + f"{f.mode:o}".encode()).hexdigest()
        for u in hb.units:
            out[f"{hb.host}:unit:{u.name}"] = hashlib.sha256(repr(u).encode()).hexdigest()
    return out


def _render(tenant: Tenant) -> dict[str, str]:
    from omldeploy.render.build import render_tenant

    return fingerprint(render_tenant(tenant))


def _password() -> bytes:
    try:
        return vaultsource.password()
    except vaultsource.NoVaultPassword as exc:
        raise SecretsError(f"{exc}; nothing was changed") from None


def read_vault_file(path: Path) -> dict[str, str]:
    """The plaintext mapping of an existing vault.yml (the loader already checked it)."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    text = vault_mod.decrypt(raw, "(file)") if vault_mod.is_encrypted(raw) else raw.decode("utf-8")
    from omldeploy.inventory.yamlsource import load

    data = load(text).data or {}
    return {str(k): str(v) for k, v in data.items()}


def write_vault_file(path: Path, values: dict[str, str], password: bytes) -> None:
    """Encrypt `values` as a whole-file vault, written atomically at 0600."""
    header = "# omldeploy: secrets of this tenant (merged into inventory.yml's all: vars)\n"
    plain = header + "".join(f"{k}: {_quoted(v)}\n" for k, v in sorted(values.items()))
    _write_private(path, vault_mod.encrypt(plain, password))


def _quoted(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar: the text stays a string


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path, path.name):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def inventory_secrets(tenant: Tenant) -> dict[str, str]:
    """The secret settings written in inventory.yml itself (not in vault.yml), with their values."""
    from omldeploy.inventory.yamlsource import load

    in_vault = set(read_vault_file(tenant.folder / vault_mod.VAULT_FILE))
    doc = load(tenant.inventory_path.read_text(encoding="utf-8"))
    written = {path[-1] for path in doc.key_lines if path and path[-1] in SECRET_KEYS}
    return {k: tenant.settings.text(k) for k in sorted(SECRET_KEYS)
            if k in written and k not in in_vault and tenant.settings.has(k)}


def init(tenant: Tenant, reporter: Reporter) -> int:
    """Move every password of inventory.yml into vault.yml; the render must stay byte-identical."""
    inv = tenant.inventory_path
    vault_path = tenant.folder / vault_mod.VAULT_FILE
    with tenant_lock(tenant.folder, tenant.name, "secrets init"):
        moving = inventory_secrets(tenant)
        if not moving:
            reporter.line(f"tenant {tenant.name}: no password left in {inv.name}"
                          + (f"; they are in {vault_path.name}" if vault_path.exists() else "")
                          + ": nothing to do")
            return EXIT_OK
        password = _password()
        before = _render(tenant)
        old_inv = inv.read_bytes()
        old_vault = vault_path.read_bytes() if vault_path.exists() else None
        merged = {**read_vault_file(vault_path), **moving}
        try:
            write_vault_file(vault_path, merged, password)
            set_tenant_keys(inv, dict.fromkeys(moving), add=frozenset())
            after_tenant = load_tenant(tenant.folder, tenant.name)
            after = _render(after_tenant)
            if after != before:
                differ = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
                raise SecretsError(f"the render changed after the move ({len(differ)} file(s), e.g. "
                                   f"{differ[0]}); both files were put back", EXIT_FAILED)
        except BaseException:
            _restore(inv, old_inv, vault_path, old_vault)
            raise
        backup = inv.with_name(inv.name + ".bak")
        backup.unlink(missing_ok=True)  # the previous text holds the passwords in clear
        reporter.line(f"tenant {tenant.name}: moved {len(moving)} secret(s) into {vault_path} (encrypted, 0600): "
                      + ", ".join(moving))
        reporter.line(f"verified: the rendered files are byte-identical before and after "
                      f"({len(before)} files and units); {backup.name} with the old text removed")
        reporter.line("keep the vault password outside the tenants repository; every verb now needs "
                      f"--vault-password-file, --ask-vault-pass or {vaultsource.ENV}")
        ledger.append(tenant.folder, ledger.Record(
            action="secrets init", outcome="ok", started=ledger.now(), duration=0.0,
            versions=dict(tenant.versions), extra={"moved": sorted(moving)}), redact=redactor(tenant))
        return EXIT_OK


def _restore(inv: Path, inv_bytes: bytes, vault_path: Path, vault_bytes: bytes | None) -> None:
    _write_private(inv, inv_bytes)
    if vault_bytes is None:
        vault_path.unlink(missing_ok=True)
    else:
        _write_private(vault_path, vault_bytes)


# ------------------------------------------------------------------------------------------- rotate


@dataclass(frozen=True)
class Rotation:
    """One rotatable secret: its key, where it is generated and how the service is told and checked."""

    what: str
    key: str
    generated: bool  # lives in .omldeploy/secrets.yml (not written by the operator)
    make: Callable[[], str]
    restarts: str  # what the operator is told restarts (the real list comes from the apply)


def _token() -> str:
    # letters and digits only: valid unquoted in every config, DSN and env file that carries it
    return pysecrets.token_hex(16)


ROTATIONS: dict[str, Rotation] = {
    "postgres": Rotation("postgres", "postgres_password", False, _token,
                         "PostgreSQL and every unit that connects to it (Django, daphne, cron, dialer, exporter)"),
    "ami": Rotation("ami", "ami_password", False, _token, "Asterisk (manager.conf) and the units that log in to AMI"),
    "keepalived": Rotation("keepalived", "keepalived_auth_pass", True, lambda: pysecrets.token_hex(4),
                           "keepalived on both nodes of each pair"),
    "redis": Rotation("redis", "redis_password", True, _token, "Redis, Sentinel and their clients"),
    "bucket": Rotation("bucket", "bucket_secret_key", False, _token, "MinIO and the units using the bucket"),
}


@dataclass(frozen=True)
class Plan:
    """What a rotation will do, decided before anything changes."""

    rotation: Rotation
    home: str  # "inventory.yml", "vault.yml" or ".omldeploy/secrets.yml"
    service_hosts: tuple[str, ...]  # where the service that checks the secret runs
    units: dict[str, list[str]]  # host -> units whose rendered files use the secret (they restart)


def plan(tenant: Tenant, what: str) -> Plan:
    """Decide where the secret lives and what uses it; SecretsError (exit 3) when not applicable."""
    rot = ROTATIONS[what]
    s = tenant.settings
    if what == "postgres" and tenant.layout.external_db:
        raise SecretsError("not applicable: PostgreSQL is managed outside omldeploy (postgres_host); change the "
                           "password at the provider, then write it in the inventory and run install",
                           EXIT_UNAVAILABLE)
    if what == "bucket":
        raise SecretsError("not available in this version: rotating the MinIO user's secret is not implemented "
                           "yet; nothing was changed", EXIT_UNAVAILABLE)
    if rot.generated:
        current = material.tenant_secrets(tenant.folder)
        if rot.key not in current:
            raise SecretsError(f"not applicable: tenant {tenant.name} has no {what} password in its layout "
                               f"({tenant.layout.describe()}); nothing was changed", EXIT_UNAVAILABLE)
        home = str(PENDING.with_name("secrets.yml"))
    else:
        if not s.has(rot.key):
            raise SecretsError(f"not applicable: the inventory sets no {rot.key}", EXIT_UNAVAILABLE)
        home = _home(tenant, rot.key)
    units = _users(tenant, rot)
    if not units:
        raise SecretsError(f"not applicable: no unit of tenant {tenant.name} uses {rot.key}", EXIT_UNAVAILABLE)
    role = {"postgres": "data", "ami": "voice"}.get(what)
    hosts = tuple(h.name for h in tenant.hosts if role is None or role in h.roles or "aio" in h.roles)
    return Plan(rot, home, hosts, units)


def _home(tenant: Tenant, key: str) -> str:
    from omldeploy.inventory.yamlsource import load

    if key in read_vault_file(tenant.folder / vault_mod.VAULT_FILE):
        return vault_mod.VAULT_FILE
    doc = load(tenant.inventory_path.read_text(encoding="utf-8"))
    if any(p[-1] == key for p in doc.vaulted):
        raise SecretsError(f"{key} is a `!vault` value inside {tenant.inventory_path.name}; run `omldeploy secrets "
                           f"init --tenant {tenant.name}` first (it moves it into {vault_mod.VAULT_FILE}, which "
                           "rotate can rewrite); nothing was changed")
    return tenant.inventory_path.name


def _users(tenant: Tenant, rot: Rotation) -> dict[str, list[str]]:
    """host -> units with a rendered file that changes when only this secret changes (by construction,
    as render/taint.py finds secret files)."""
    from omldeploy.render.build import _render_bundle  # the pure render, without the taint pass

    secrets = material.tenant_secrets(tenant.folder)
    base, tls = _render_bundle(tenant, secrets, None)
    if rot.generated:
        other_tenant, other_secrets = tenant, {**secrets, rot.key: _other(secrets[rot.key])}
    else:
        values = {k: tenant.settings[k] for k in tenant.settings}
        values[rot.key] = _other(str(values[rot.key]))
        other_tenant = dataclasses.replace(
            tenant, settings=type(tenant.settings)(values, tenant.settings.explicit))
        other_secrets = secrets
    other, _ = _render_bundle(other_tenant, other_secrets, tls)
    other_files = {(hb.host, f.path): f.content for hb in other.hosts for f in hb.files}
    out: dict[str, list[str]] = {}
    for hb in base.hosts:
        changed = {f.path for f in hb.files if other_files.get((hb.host, f.path)) != f.content}
        names = [u.name for u in hb.units if changed & set(u.files) or (u.env_file and u.env_file in changed)]
        if names:
            out[hb.host] = names
    return out


def _other(value: str) -> str:
    new = "zQ" + pysecrets.token_hex(12)
    return new[: len(value)] if 0 < len(value) < len(new) else new


def _pending(folder: Path) -> dict[str, str] | None:
    """The unfinished rotation, or None. Damage is a StateError naming the file, never its text."""
    path = folder / PENDING
    if not path.exists():
        return None
    fix = ("it holds the new value of an unfinished rotation: restore it from the tenants repository, or, if "
           "the service still accepts the old value, delete it and run the rotation again")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise StateError(path, "is damaged: not valid YAML", fix) from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in ("what", "new", "old")):
        raise StateError(path, "is damaged: an unfinished rotation without its values", fix)
    return {str(k): str(v) for k, v in data.items()}


def _save_pending(folder: Path, data: dict[str, str]) -> None:
    path = folder / PENDING
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = ("# omldeploy: a secret rotation in progress (new and old value); removed once verified\n"
            + yaml.safe_dump(data, sort_keys=True))
    _write_private(path, text.encode())


def _write_home(tenant: Tenant, p: Plan, value: str) -> None:
    key = p.rotation.key
    if p.rotation.generated:
        path = tenant.folder / material.MATERIAL_DIR / "secrets.yml"
        current = material.read_secrets_file(path)
        if current.get(key) == value:
            return
        current[key] = value
        header = "# Generated by omldeploy for this tenant. Keep private (0600); do not share between tenants.\n"
        _write_private(path, (header + yaml.safe_dump(current, sort_keys=True)).encode())
    elif p.home == vault_mod.VAULT_FILE:
        path = tenant.folder / vault_mod.VAULT_FILE
        values = read_vault_file(path)
        if values.get(key) != value:
            write_vault_file(path, {**values, key: value}, _password())
    else:
        try:
            set_tenant_keys(tenant.inventory_path, {key: value}, add=frozenset())
        except RewriteError as exc:
            raise SecretsError(f"{exc}; nothing was changed on the hosts") from None
        tenant.inventory_path.with_name(tenant.inventory_path.name + ".bak").unlink(missing_ok=True)


class VerifyFailed(Exception):
    pass


def _call(tenant: Tenant, host: Host, op: str, password: str, **args: Any) -> dict[str, Any]:
    """One omldeploy_secret call (arguments hidden from Ansible's output); its report."""
    from omldeploy.apply.engine import Step, run_steps

    s = tenant.settings
    result = run_steps(tenant, [Step(op, "omldeploy_secret", {host.name: {
        "tenant": tenant.name, "op": op, "password": password, "pg_user": s.text("postgres_user"),
        "pg_db": s.text("postgres_database"), **args}}, secret=True)])
    r = result.hosts[host.name]
    if not result.ok:
        raise VerifyFailed(f"{host.name}: {op} failed: {r.error or result.aborted or 'no answer'}")
    return r.reports.get(op) or {}


def _change_service(tenant: Tenant, p: Plan, new: str, reporter: Reporter) -> None:
    """Tell the service that checks the secret (before the units that present it restart)."""
    if p.rotation.what != "postgres":
        return  # the others read it from their rendered files: the apply changes them
    errors = []
    for name in p.service_hosts:  # HA: only the primary accepts ALTER ROLE; it replicates to the standby
        try:
            _call(tenant, tenant.host(name), "pg_password", new)
            reporter.line(f"{name}: PostgreSQL role {tenant.settings.text('postgres_user')} has the new password")
            return
        except VerifyFailed as exc:
            errors.append(str(exc))
    raise VerifyFailed("; ".join(errors))


def _verify(tenant: Tenant, p: Plan, new: str, old: str, reporter: Reporter) -> None:
    what = p.rotation.what
    for name in p.service_hosts[:1] if what == "postgres" else p.service_hosts:
        host = tenant.host(name)
        if what == "postgres":
            args: dict[str, Any] = {}
            op = "pg_login"
        elif what == "ami":
            args = {"user": tenant.settings.text("ami_user"), "address": host.lan_ip or "127.0.0.1", "port": 5038}
            op = "ami_login"
        else:
            return
        seen = _call(tenant, host, op, new, old_password=old, **args)
        if not seen.get("accepted"):
            raise VerifyFailed(f"{name}: the new {what} password is refused")
        if seen.get("old_accepted", True):
            raise VerifyFailed(f"{name}: the old {what} password is still accepted")
        reporter.line(f"verified on {name}: the new {what} password is accepted, the old one refused")


def rotate(tenant: Tenant, what: str, reporter: Reporter, *, dry_run: bool = False) -> int:
    """Rotate one secret (see the module docstring); re-running after a failure finishes the job."""
    from omldeploy.ops.converge import converge

    started = ledger.now()
    p = plan(tenant, what)
    reporter.line(f"rotate {what} ({p.rotation.key}, kept in {p.home}) for tenant {tenant.name}")
    for host, units in p.units.items():
        reporter.line(f"  {host}: restarts {', '.join(units)}")
    if dry_run:
        reporter.line("dry run: nothing was changed")
        return EXIT_OK
    if p.home == vault_mod.VAULT_FILE:
        _password()  # refuse now, before the service changes, rather than when writing the vault
    with tenant_lock(tenant.folder, tenant.name, f"secrets rotate {what}"):
        pending = _pending(tenant.folder)
        if pending is not None and pending["what"] != what:
            raise SecretsError(f"a rotation of {pending['what']} is unfinished; run `omldeploy secrets rotate "
                               f"--tenant {tenant.name} --what {pending['what']}` to finish it first")
        current = (material.tenant_secrets(tenant.folder)[p.rotation.key] if p.rotation.generated
                   else tenant.settings.text(p.rotation.key))
        if pending is None:
            pending = {"what": what, "new": p.rotation.make(), "old": current}
            _save_pending(tenant.folder, pending)  # before anything changes: a re-run reuses it
        else:
            reporter.line(f"finishing the unfinished rotation of {what} (its new value was saved in {PENDING})")
        new, old = pending["new"], pending["old"]
        outcome, detail = "failed", ""
        try:
            _change_service(tenant, p, new, reporter)
            _write_home(tenant, p, new)
            reporter.line(f"the new value is in {p.home}; applying the tenant (only what uses it restarts)")
            fresh = load_tenant(tenant.folder, tenant.name)
            if converge(fresh, "install", reporter, extra={"secrets_rotate": what}) != 0:
                raise VerifyFailed("the apply failed (see above)")
            # the apply restarted each unit using the secret and waited for its health check (the app's
            # included): a unit that does not come back healthy with the new secret failed the apply above
            _verify(fresh, p, new, old, reporter)
            (tenant.folder / PENDING).unlink()
            outcome = "ok"
            reporter.line(f"rotated {what}: done")
            return EXIT_OK
        except (VerifyFailed, TimeoutError) as exc:
            detail = str(exc)
            reporter.warn(f"rotation of {what} not finished: {detail}. The new value is kept in {PENDING}; fix "
                          f"the cause and run the same command again to finish it")
            return EXIT_FAILED
        finally:
            ledger.append(tenant.folder, ledger.Record(
                action="secrets rotate", outcome=outcome, started=started, duration=0.0,
                versions=dict(tenant.versions), hosts=list(p.units), detail=detail,
                extra={"what": what, "key": p.rotation.key, "home": p.home}),
                redact=_redact_with(tenant, new, old))


def _redact_with(tenant: Tenant, *values: str) -> Callable[[str], str]:
    from omldeploy.state.runlog import Redactor

    base = redactor(tenant)

    def redact(text: str) -> str:
        return Redactor(list(values))(base(text))

    return redact
