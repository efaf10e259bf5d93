"""The rendered `oml_acme` script run for real by /bin/sh, with `podman` replaced by a recorder that
plays lego (writes the certificate files lego would) and the host folders moved into a temp dir.

What it pins down: the lego command line for each challenge, the refusals (a DNS hook that is not an
executable, a renew window that is not a number), and that installing the certificate replaces a
symlink planted in the certificate folder instead of writing through it (a container that mounts the
folder read-write must not make host root overwrite another file)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from omldeploy.components import acme
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

ACME = {"certs": "acme", "fqdn": "contact.example.com", "acme_email": "ops@example.com"}

FAKE_PODMAN = """#!/bin/sh
echo "podman $*" >> "$PODMAN_LOG"
case "$1" in
  run)
    mkdir -p "$FAKE_DATA/certificates"
    printf 'CERT %s\\n' "$FAKE_SERIAL" > "$FAKE_DATA/certificates/contact.example.com.crt"
    printf 'KEY %s\\n' "$FAKE_SERIAL" > "$FAKE_DATA/certificates/contact.example.com.key"
    ;;
  container) exit 1 ;;
esac
exit 0
"""


class Host:
    def __init__(self, tmp: Path, script: str) -> None:
        self.tmp = tmp
        self.data, self.webroot, self.certs = tmp / "acme", tmp / "webroot", tmp / "certs"
        tmp.mkdir()
        for d in (self.data, self.webroot, self.certs):
            d.mkdir()
        for var, path in (("DATA", self.data), ("WEBROOT", self.webroot), ("CERTS", self.certs)):
            script, n = re.subn(rf"^{var}=.*$", f"{var}={path}", script, count=1, flags=re.M)
            assert n == 1, var
        (tmp / "bin").mkdir()
        (tmp / "bin" / "podman").write_text(FAKE_PODMAN)
        (tmp / "bin" / "podman").chmod(0o755)
        self.script = tmp / "oml_acme"
        self.script.write_text(script)
        self.log = tmp / "podman.log"

    def run(self, *args: str, serial: str = "1", **env: str) -> subprocess.CompletedProcess[str]:
        full = {"PATH": f"{self.tmp / 'bin'}:/usr/bin:/bin", "PODMAN_LOG": str(self.log),
                "FAKE_DATA": str(self.data), "FAKE_SERIAL": serial, **env}
        return subprocess.run(["/bin/sh", str(self.script), *args], capture_output=True, text=True, env=full,
                              timeout=30, check=False)

    def calls(self) -> list[str]:
        """podman runs and execs (the Kamailio presence check left out)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [c for c in lines if not c.startswith("podman container exists")]


def host_for(make_tenant: MakeTenant, tmp_path: Path, **vars: str) -> Host:
    hb = render_tenant(make_tenant("aio", vars={**ACME, **vars})).host("omnileads_aio")
    return Host(tmp_path / "host", hb.file(acme.SCRIPT).content.decode())


def test_issue_http_01_installs_and_reloads(make_tenant: MakeTenant, tmp_path: Path) -> None:
    host = host_for(make_tenant, tmp_path)
    proc = host.run("issue")
    assert proc.returncode == 0, proc.stderr
    run, reload = host.calls()[0], host.calls()[1]
    assert "--http --http.webroot /webroot" in run and run.endswith("--domains contact.example.com run")
    assert f"--volume={host.data}:/acme" in run and "--server https://acme-v02.api.letsencrypt.org/directory" in run
    assert reload == "podman exec oml-nginx-server nginx -s reload"
    assert (host.certs / "cert.pem").read_text() == "CERT 1\n"
    assert (host.certs / "key.pem").stat().st_mode & 0o777 == 0o600
    again = host.run("issue")  # lego already holds it: no second order, nothing reinstalled or reloaded
    assert again.returncode == 0 and "already in place" in again.stdout and len(host.calls()) == 2


def test_renew_installs_only_a_new_certificate(make_tenant: MakeTenant, tmp_path: Path) -> None:
    host = host_for(make_tenant, tmp_path)
    nothing = host.run("renew")
    assert nothing.returncode == 0 and "nothing to renew" in nothing.stdout and host.calls() == []
    assert host.run("issue").returncode == 0
    renewed = host.run("renew", serial="2", OML_ACME_DAYS="45")
    assert renewed.returncode == 0, renewed.stderr
    assert "renew --days 45 --no-random-sleep" in host.calls()[2]
    assert host.calls()[3].endswith("nginx -s reload") and (host.certs / "cert.pem").read_text() == "CERT 2\n"
    bad = host.run("renew", OML_ACME_DAYS="30; reboot")
    assert bad.returncode == 2 and "must be a number of days" in bad.stdout


def test_a_planted_symlink_is_replaced_not_followed(make_tenant: MakeTenant, tmp_path: Path) -> None:
    host = host_for(make_tenant, tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, host.certs / "key.pem")
    os.symlink(victim, host.certs / "cert.pem")
    assert host.run("issue").returncode == 0
    assert victim.read_text() == "precious\n"
    assert not (host.certs / "key.pem").is_symlink() and (host.certs / "key.pem").read_text() == "KEY 1\n"


def test_dns_01_runs_the_hook_through_lego_exec(make_tenant: MakeTenant, tmp_path: Path) -> None:
    hook = tmp_path / "hook.sh"
    host = host_for(make_tenant, tmp_path, acme_challenge="dns", acme_dns_hook=str(hook))
    missing = host.run("issue")
    assert missing.returncode == 2 and f"acme_dns_hook {hook} is not an executable" in missing.stdout
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    assert host.run("issue").returncode == 0
    run = host.calls()[0]
    assert f"--volume={hook}:/oml-acme-dns-hook:ro --env=EXEC_PATH=/oml-acme-dns-hook" in run
    assert "--dns exec" in run and "--http" not in run


@pytest.mark.parametrize("verb", ["", "revoke"])
def test_unknown_verb(make_tenant: MakeTenant, tmp_path: Path, verb: str) -> None:
    proc = host_for(make_tenant, tmp_path).run(verb)
    assert proc.returncode == 2 and "usage: oml_acme issue|renew" in proc.stderr
