"""`omldeploy dashboard [--listen 127.0.0.1:8080]`: the fleet as a read-only web page (omldeploy/web).

It binds to the loopback address by default. Any other address needs a token (`--token-file`, or
`$OMLDEPLOY_DASHBOARD_TOKEN`), since the page names every tenant, its hosts and its state; the token is
never printed whole, only the address to open with it (`?token=` once, then a cookie).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import signal
import stat
from pathlib import Path
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.fleet import _parallel, _positive
from omldeploy.cli.output import Console
from omldeploy.inventory.problems import InventoryError, Problem

TOKEN_ENV = "OMLDEPLOY_DASHBOARD_TOKEN"


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="the fleet as a read-only web page (tenants, health, backups, drift, "
                                         "operations)")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="address to serve on (default 127.0.0.1:8080; any non-loopback address needs a token)")
    p.add_argument("--token-file", type=Path, metavar="PATH",
                   help=f"file holding the access token (mode 0600; default ${TOKEN_ENV}); required off loopback")
    p.add_argument("--refresh", type=_positive, default=300.0, metavar="S",
                   help="seconds between two reads of the fleet (default 300)")
    p.add_argument("--tenants", default="*", metavar="GLOB", help="only tenants whose name matches (default *)")
    p.add_argument("--parallel", type=_parallel, default=8, metavar="N", help="tenants read at the same time")
    p.add_argument("--timeout", type=_positive, default=120, metavar="S", help="time limit per tenant (default 120)")
    p.add_argument("--no-hosts", action="store_true", help="only what the controller knows: no SSH")
    p.set_defaults(func=cmd_dashboard)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[v6]:PORT` -> (host, port); a clear error (exit 2) otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ok_port = port.isdigit() and 0 < int(port) < 65536
    if not sep or not host or not ok_port:
        raise InventoryError([Problem("--listen", "listen", "is not an address to serve on", found=text[:100],
                                      allowed="HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080")])
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InventoryError([Problem("--listen", "listen", "the host must be an IP address or localhost",
                                          found=host[:100], allowed="an IPv4/IPv6 address, or localhost")]) from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def read_token(path: Path | None) -> str | None:
    if path is None:
        value = os.environ.get(TOKEN_ENV, "").strip()
        return value or None
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError([Problem(str(path), "token-file", f"cannot be read ({exc.__class__.__name__})",
                                      allowed="a readable file holding the token")]) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InventoryError([Problem(str(path), "token-file", "is readable by other users",
                                      found=oct(st.st_mode & 0o777), allowed=f"mode 0600: chmod 600 {path}")])
    if len(text) < 16:
        raise InventoryError([Problem(str(path), "token-file", "holds a token too short to guess-proof",
                                      allowed="at least 16 characters, e.g. `openssl rand -hex 24 > FILE`")])
    return text


def cmd_dashboard(args: argparse.Namespace) -> int:
    from waitress import create_server  # type: ignore[import-untyped]

    from omldeploy.ops import fleet as fleet_op
    from omldeploy.web.app import create_app
    from omldeploy.web.snapshot import Fleet

    console = Console()
    host, port = parse_listen(args.listen)
    token = read_token(args.token_file)
    if token is None and not is_loopback(host):
        raise InventoryError([Problem("--listen", "listen", f"{host} is reachable from other machines, and the "
                                      "page names every tenant and its hosts: a token is required",
                                      found=args.listen, allowed=f"--token-file PATH (mode 0600) or ${TOKEN_ENV}, "
                                      "or a loopback address such as 127.0.0.1:8080")])
    root = context.instances_dir(args)
    opts = fleet_op.Options(pattern=args.tenants, parallel=args.parallel, timeout=int(args.timeout),
                            hosts=not args.no_hosts)
    fleet = Fleet(root, opts, refresh=args.refresh)
    app = create_app(fleet, token)
    try:
        server = create_server(app, host=host, port=port, threads=8, ident="omldeploy")
    except OSError as exc:
        console.error(f"cannot listen on {args.listen}: {exc.strerror or exc} (another program on that port?)")
        return 1
    fleet.start()
    shown = f"http://{'[' + host + ']' if ':' in host else host}:{server.effective_port}/"
    hint = f"?token={token[:4]}... (the whole token from {args.token_file or '$' + TOKEN_ENV})" if token else ""
    console.say(f"dashboard of {root} on {shown}{hint}; the fleet is read every {args.refresh:g} s; ^C ends it")

    def _stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
        server.close()
    return 0


def new_token() -> str:
    """For the docs and tests: a token of the strength the dashboard expects."""
    return secrets.token_hex(24)
