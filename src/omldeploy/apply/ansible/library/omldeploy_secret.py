#!/usr/bin/python3
"""Ansible module run ON a host: change one secret on the service that checks it, or prove which
password the service accepts (`omldeploy secrets rotate`). Operations:
  pg_password  set the PostgreSQL role's password (ALTER ROLE over the container's local socket, which
               trusts the bootstrap user); the statement goes on psql's stdin, never on a command line,
               and statement logging is switched off for it.
  pg_login     log in over TCP (127.0.0.1, SCRAM as pg_hba.conf asks) with `password`, and with `old_password`
               when given: whether each is accepted (one call proves both sides of a rotation).
  ami_login    the same with Asterisk's AMI at `address`:`port` as `user`.
The password arguments are no_log: Ansible masks them, and no report carries them. Only the Python standard
library is used on the host.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule  # type: ignore[import-untyped,import-not-found,unused-ignore]

PG = "oml-postgresql-server"
REFUSED = re.compile(r"password authentication failed|authentication failed", re.IGNORECASE)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _psql(p: dict[str, Any], sql: str, *, tcp: bool = False, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    where = ["-h", "127.0.0.1"] if tcp else ["-h", "/var/run/postgresql"]
    # `-e PGPASSWORD` without a value: podman copies it from its own environment (not from argv)
    extra = ["-e", "PGPASSWORD"] if env else []
    cmd = ["podman", "exec", "-i", *extra, PG, "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
           *where, "-U", p["pg_user"], "-d", p["pg_db"]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, input=sql,
                          env={**os.environ, **(env or {})})


def pg_password(p: dict[str, Any]) -> dict[str, Any]:
    sql = ("SET log_statement = 'none';\nSET password_encryption = 'scram-sha-256';\n"
           f"ALTER ROLE {_ident(p['pg_user'])} PASSWORD {_literal(p['password'])};\n")
    proc = _psql(p, sql)
    if proc.returncode != 0:
        raise RuntimeError("ALTER ROLE failed: " + _clean(proc.stderr or proc.stdout, p["password"]))
    return {"changed": True}


def _both(p: dict[str, Any], accepted: Callable[[str], bool]) -> dict[str, Any]:
    out = {"accepted": accepted(p["password"])}
    if p["old_password"]:
        out["old_accepted"] = accepted(p["old_password"])
    return out


def pg_login(p: dict[str, Any]) -> dict[str, Any]:
    def accepted(password: str) -> bool:
        proc = _psql(p, "SELECT 1;\n", tcp=True, env={"PGPASSWORD": password})
        if proc.returncode == 0:
            return True
        text = proc.stderr or proc.stdout
        if REFUSED.search(text):
            return False
        raise RuntimeError("psql could not log in for another reason: " + _clean(text, password))

    return _both(p, accepted)


def ami_login(p: dict[str, Any]) -> dict[str, Any]:
    def accepted(password: str) -> bool:
        deadline = time.monotonic() + p["timeout"]
        last = ""
        while time.monotonic() < deadline:  # Asterisk may still be starting after its restart
            try:
                return _ami(p, password)
            except OSError as exc:
                last = str(exc)
                time.sleep(0.5)
        raise RuntimeError(f"AMI at {p['address']}:{p['port']} did not answer: {last}")

    return _both(p, accepted)


def _ami(p: dict[str, Any], password: str) -> bool:
    with socket.create_connection((p["address"], p["port"]), timeout=5) as sock:
        fh = sock.makefile("rb")
        fh.readline()  # banner: "Asterisk Call Manager/x.y"
        sock.sendall(f"Action: Login\r\nUsername: {p['user']}\r\nSecret: {password}\r\n\r\n".encode())
        lines = []
        while True:
            line = fh.readline()
            if not line:
                raise OSError("AMI closed the connection before answering")
            if line in (b"\r\n", b"\n"):
                break
            lines.append(line.decode("utf-8", "replace").strip())
        ok = any(x.lower() == "response: success" for x in lines)
        if ok:
            sock.sendall(b"Action: Logoff\r\n\r\n")
        return ok


def _clean(text: str, secret: str) -> str:
    text = text.strip()[-300:]
    return text.replace(secret, "***") if secret else text


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "pg_password": pg_password, "pg_login": pg_login, "ami_login": ami_login,
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tenant": {"type": "str", "required": True},
            "op": {"type": "str", "required": True, "choices": sorted(OPS)},
            "password": {"type": "str", "required": True, "no_log": True},
            "old_password": {"type": "str", "default": "", "no_log": True},
            "pg_user": {"type": "str", "default": "postgres"},
            "pg_db": {"type": "str", "default": "postgres"},
            "user": {"type": "str", "default": ""},
            "address": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 5038},
            "timeout": {"type": "float", "default": 60.0},
        },
        supports_check_mode=False,
    )
    p = module.params
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", p["tenant"]) or any(
            c in str(p[k]) for k in ("user", "password", "old_password") for c in "\r\n\0"):
        module.fail_json(msg="bad tenant name, or a line break in the user or password")
    try:
        report = OPS[p["op"]](p)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        detail = _clean(_clean(str(exc), p["password"]), p["old_password"])
        module.fail_json(msg=detail, report={"failed": True, "error": detail})
    module.exit_json(changed=bool(report.get("changed")), report=report)


if __name__ == "__main__":
    main()
