"""Count a voice host's active calls over AMI, before a unit on the voice path restarts (issue 14, item 6).

A restart of Asterisk, Kamailio or RTPengine drops every call on the host. The `calls` step asks
Asterisk (`CoreShowChannels`) how many channels are up and, through Ansible's `until`, asks again until
none are left or `voice_drain_timeout` has passed; the controller shows each answer as progress. The
AMI account is read from the Asterisk env file on the host, so no secret travels in the step's
arguments. Only the Python standard library is used on the host.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

#: the longest one AMI conversation may take (connect, login, list, logoff)
AMI_TIMEOUT = 5.0


def ami_account(env_file: str) -> tuple[str, str]:
    """AMI_USER and AMI_PASSWORD from the env file (KEY=VALUE lines, as Podman reads them)."""
    values: dict[str, str] = {}
    with open(env_file, encoding="utf-8") as fh:
        for line in fh:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep:
                values[key] = value
    return values.get("AMI_USER", ""), values.get("AMI_PASSWORD", "")


def _blocks(sock: socket.socket, deadline: float, buf: bytes = b"") -> Any:
    """AMI messages (blocks ending in an empty line) as dicts with lower-case keys; `buf`: bytes
    already read."""
    while True:
        while b"\r\n\r\n" in buf:
            block, buf = buf.split(b"\r\n\r\n", 1)
            fields: dict[str, str] = {}
            for line in block.decode("utf-8", "replace").split("\r\n"):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            yield fields
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("AMI did not answer in time")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("AMI closed the connection")
        buf += chunk


def active_channels(address: str, port: int, user: str, password: str) -> int:
    """How many channels Asterisk has up (`CoreShowChannels`' ListItems). Raises OSError when AMI cannot
    be reached and PermissionError when it refuses the login."""
    deadline = time.monotonic() + AMI_TIMEOUT
    with socket.create_connection((address, port), timeout=AMI_TIMEOUT) as sock:
        sock.settimeout(AMI_TIMEOUT)
        greeting = b""
        while b"\r\n" not in greeting:  # "Asterisk Call Manager/x.y.z" ends in one CRLF, not a blank line
            chunk = sock.recv(256)
            if not chunk:
                raise ConnectionError("AMI closed the connection")
            greeting += chunk
        rest = greeting.split(b"\r\n", 1)[1]
        sock.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {password}\r\nEvents: off\r\n"
                     "ActionID: omldeploy-login\r\n\r\n".encode())
        blocks = _blocks(sock, deadline, rest)
        login = next(b for b in blocks if b.get("actionid") == "omldeploy-login")
        if login.get("response", "").lower() != "success":
            raise PermissionError(f"AMI refused the login: {login.get('message', '')}")
        sock.sendall(b"Action: CoreShowChannels\r\nActionID: omldeploy-calls\r\n\r\n")
        counted = 0
        for b in blocks:
            if b.get("actionid") != "omldeploy-calls":
                continue
            if b.get("response", "").lower() == "error":
                raise PermissionError(f"AMI refused CoreShowChannels: {b.get('message', '')}")
            if b.get("event", "").lower() == "coreshowchannel":
                counted += 1
            elif b.get("event", "").lower() == "coreshowchannelscomplete":
                items = b.get("listitems", "")
                with contextlib.suppress(OSError):
                    sock.sendall(b"Action: Logoff\r\n\r\n")
                return int(items) if items.isdigit() else counted
    raise ConnectionError("AMI ended the list early")


def count(spec: dict[str, Any]) -> dict[str, Any]:
    """One answer for the `calls` step: `channels` (None when Asterisk cannot be asked: a stopped
    Asterisk holds no call) and `error` saying why it could not be asked."""
    try:
        user, password = ami_account(spec["env_file"])
        return {"channels": active_channels(spec["address"], int(spec["port"]), user, password)}
    except (OSError, ValueError, StopIteration) as exc:
        return {"channels": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
