"""Plain `ssh` to a tenant host with the same connection settings Ansible uses.

For what Ansible cannot do: stream (a journal followed live, a progress file read every second). The
host's `ansible_*` connection variables decide the address, port, user, key and extra options, exactly as
for the engine, so an inventory that Ansible reaches is reached here too (`ansible_ssh_common_args` is
trusted like any SSH config, as the README says)."""

from __future__ import annotations

import shlex

from omldeploy.apply.engine import _connection_vars
from omldeploy.inventory.model import Host


def ssh_argv(host: Host, control_dir: str | None = None, *, connect_timeout: int = 5) -> list[str]:
    """`ssh ... user@address` for `host`, never asking for a password (BatchMode): the remote command is
    appended by the caller as one shell-quoted string. `control_dir` shares one connection between calls."""
    conn = _connection_vars(host)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}", "-p", str(conn["ansible_port"])]
    if control_dir:
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C", "-o", "ControlPersist=30"]
    if conn.get("ansible_ssh_private_key_file"):
        argv += ["-i", str(conn["ansible_ssh_private_key_file"])]
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if conn.get(key):
            argv += shlex.split(str(conn[key]))
    argv += ["--", f"{conn.get('ansible_user', 'root')}@{conn['ansible_host']}"]
    return argv


def needs_password(host: Host) -> bool:
    """True when the inventory reaches this host with a password only (plain ssh cannot, BatchMode)."""
    return any(k in host.connection for k in ("ansible_password", "ansible_ssh_pass")) and \
        not host.connection.get("ansible_ssh_private_key_file")


def become_prefix(host: Host) -> str:
    """`sudo -n ` when Ansible would become root on this host as another user, else nothing."""
    user = str(host.connection.get("ansible_user", "root"))
    become = str(host.connection.get("ansible_become", "")).lower() in ("true", "yes", "1")
    return "sudo -n " if become and user != "root" else ""
