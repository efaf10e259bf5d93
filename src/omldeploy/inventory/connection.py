"""What the inventory tells SSH: trusted like any SSH config, but a disabled host key check is said aloud.

`ansible_ssh_common_args` and its kin go to ssh as options, so they can do whatever an `~/.ssh/config`
can (ProxyCommand included): they are trusted, like the inventory file's author. omldeploy only reads
them for one thing: the seed told operators to turn host key checking off, and an inventory copied from
it keeps `StrictHostKeyChecking=no` silently. With it, whoever answers on a host's address gets every
password the install pushes. omldeploy's own default is `accept-new` (trust on first use).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from omldeploy.inventory.model import Tenant
from omldeploy.inventory.problems import Problems

SSH_ARG_KEYS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")
_NO_CHECK = re.compile(r"StrictHostKeyChecking\s*=?\s*(no|off|false)\b|UserKnownHostsFile\s*=?\s*/dev/null",
                       re.IGNORECASE)


def host_key_checking(t: Tenant, p: Problems, line: Callable[[str], int | None]) -> None:
    """One warning naming every host whose SSH options turn host key checking off, and how to fix it."""
    hosts = [h.name for h in t.hosts
             if any(_NO_CHECK.search(str(h.connection.get(k, ""))) for k in SSH_ARG_KEYS)]
    if hosts:
        p.warn("ansible_ssh_common_args", "turns SSH host key checking off (StrictHostKeyChecking=no or "
               "UserKnownHostsFile=/dev/null) for " + ", ".join(hosts) + ": a machine answering on a host's "
               "address would receive every password the install sends. Remove the option (omldeploy "
               "defaults to StrictHostKeyChecking=accept-new: the key is trusted on first use and checked "
               "afterwards), or pin the keys with -o UserKnownHostsFile=<file>")
