"""The bucket secret never lands on an argv (issue 12: `mc admin user add` put it on mc's command line,
readable by every user of the host in /proc/<pid>/cmdline)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from omldeploy.components.minio import MC_ENV
from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

FAKE_MC = """#!/bin/sh
# records every call: its argv (one word a line) and, for `admin user add`, what it reads on stdin
{ printf 'ARGV'; for a in "$@"; do printf ' [%s]' "$a"; done; echo; } >> "$LOG"
if [ "$1 $2 $3" = "admin user add" ]; then IFS= read -r sk; printf 'STDIN [%s]\\n' "$sk" >> "$LOG"; fi
exit 0
"""


def test_the_bucket_secret_reaches_mc_on_stdin_not_argv(make_tenant: MakeTenant, tmp_path: Path) -> None:
    secret = "bucket-Secret with spaces $HOME 'q'"
    tenant = make_tenant("aio", vars={"bucket_secret_key": secret})
    hb = render_tenant(tenant).host("omnileads_aio")
    env = dict(line.split("=", 1) for line in hb.file(MC_ENV).content.decode().splitlines() if line)
    [hook] = [h for u in hb.units if u.name == "minio" for h in u.post_start]
    argv = shlex.split(hook)
    assert argv[:2] == ["podman", "exec"] and secret not in hook  # the host's argv: only a variable name
    script = argv[argv.index("-c") + 1]

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "mc").write_text(FAKE_MC)
    os.chmod(bindir / "mc", 0o755)
    log = tmp_path / "mc.log"
    # run the container's script as `podman exec --env-file` would: the env file's variables, then sh -c
    proc = subprocess.run(["/bin/sh", "-c", script], env={**env, "PATH": f"{bindir}:/usr/bin:/bin", "LOG": str(log)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    argv_lines = [c for c in calls if c.startswith("ARGV")]
    assert any(c.startswith("ARGV [admin] [user] [add]") for c in argv_lines), calls
    assert not any(secret in c for c in argv_lines), calls
    assert f"STDIN [{secret}]" in calls
