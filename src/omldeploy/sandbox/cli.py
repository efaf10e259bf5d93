"""`omldeploy sandbox ...`: the operator's commands for local test hosts.

    sandbox up [--hosts N | --add N] [--os debian12[,debian13...]] [--name NAME] [--s3] [--images]
    sandbox status [--name NAME]
    sandbox down [--name NAME | --all]
    sandbox images [--name NAME] [--only KEY,...]      build (cached) and push the test images
    sandbox registry [--name NAME]                      (re)start the sandbox registry
    sandbox s3 [--name NAME]                            start the S3 store, print endpoint + keys
    sandbox ssh HOST [COMMAND...] [--name NAME]
    sandbox inventory [--name NAME]                     print the Ansible inventory
    sandbox power-off HOST [--soft] [--name NAME]       cut a host's power (HOST: name or address)
    sandbox power-on HOST [--name NAME]                 boot it again and wait until it is up
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from .errors import SandboxError

EXIT_INPUT = 2  # bad input: an unknown sandbox name, as an unknown tenant is for the other verbs


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn operator errors into one clear line and exit code 1 (no traceback)."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except SandboxError as exc:
            print(f"sandbox: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("sandbox: interrupted; run `omldeploy sandbox down` to clean up", file=sys.stderr)
            return 130

    handler.__doc__ = fn.__doc__
    return handler


def _oses(text: str) -> tuple[str, ...]:
    from .recipes import recipe

    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected e.g. debian12 or debian12,debian13")
    for item in items:
        try:
            recipe(item)
        except SandboxError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return items


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


@_guard
def _cmd_up(args: argparse.Namespace) -> int:
    """Create or complete a sandbox and wait for its hosts."""
    from .api import Sandbox
    from .lifecycle import UpRequest, up

    if args.hosts is not None and args.add:
        raise SandboxError("use either --hosts N (total) or --add N (more hosts), not both")
    st = up(UpRequest(name=args.name, hosts=args.hosts, add=args.add or 0, oses=args.os,
                      registry=True, s3=args.s3))
    if args.images:
        from .images.build import build_and_push

        build_and_push(st, only=None)
    sb = Sandbox(st)
    print(f"sandbox {sb.name} is up: {len(sb.hosts)} host(s) on {sb.subnet}, registry {sb.registry}")
    for h in sb.hosts:
        print(f"  {h.name}  {h.ip}  {h.os}")
    print(f"ssh:       ssh -F {sb.ssh_config} {sb.hosts[0].name}")
    print(f"inventory: {sb.inventory_path}")
    if args.s3:
        s3 = sb.s3
        print(f"s3:        {s3.endpoint} access_key={s3.access_key} (secret: `omldeploy sandbox s3`)")
    return 0


@_guard
def _cmd_down(args: argparse.Namespace) -> int:
    """Stop and remove a sandbox (or all of them)."""
    from .lifecycle import down, require_root
    from .paths import existing_names

    require_root()
    names = existing_names() if args.all else [args.name]
    for name in names:
        print(f"sandbox {name}: {'removed' if down(name) else 'nothing to remove'}")
    if not names:
        print("no sandboxes")
    return 0


@_guard
def _cmd_status(args: argparse.Namespace) -> int:
    """Print what runs, per sandbox. Naming a sandbox that does not exist is bad input (exit 2), as an
    unknown tenant is for the other verbs: a script polling `status --name X` must not read it as "up"."""
    from .lifecycle import status_lines
    from .paths import check_name, existing_names

    if args.name is not None:
        try:
            check_name(args.name)
        except SandboxError as exc:
            print(f"sandbox: error: {exc}", file=sys.stderr)
            return EXIT_INPUT
        if args.name not in existing_names():
            known = ", ".join(existing_names()) or "none"
            print(f"sandbox: error: no sandbox named {args.name!r} (existing: {known}); "
                  f"create it with `omldeploy sandbox up --name {args.name}`", file=sys.stderr)
            return EXIT_INPUT
    for line in status_lines(args.name):
        print(line)
    return 0


@_guard
def _cmd_images(args: argparse.Namespace) -> int:
    """Build the test images (cached) and push them to the sandbox registry."""
    from . import registry
    from .api import Sandbox
    from .images.build import build_and_push
    from .lifecycle import require_root

    require_root()
    sb = Sandbox.load(args.name)
    registry.start(sb.state)
    only = None if not args.only else [x.strip() for x in args.only.split(",") if x.strip()]
    refs = build_and_push(sb.state, only=only)
    for ref in refs:
        print(ref)
    return 0


@_guard
def _cmd_registry(args: argparse.Namespace) -> int:
    """(Re)start the sandbox registry."""
    from . import registry
    from .api import Sandbox
    from .lifecycle import require_root

    require_root()
    sb = Sandbox.load(args.name)
    registry.start(sb.state)
    print(f"registry: {sb.registry} (plain HTTP; trusted by the hosts of sandbox {sb.name} only)")
    return 0


@_guard
def _cmd_s3(args: argparse.Namespace) -> int:
    """Start the S3 store and print how to reach it."""
    from . import s3store
    from .api import Sandbox
    from .lifecycle import require_root

    require_root()
    sb = Sandbox.load(args.name)
    info = s3store.start(sb.state)
    print(f"endpoint:   {info.endpoint}\naccess_key: {info.access_key}\nsecret_key: {info.secret_key}\n"
          f"region:     {info.region} (path-style addressing, SigV4)")
    return 0


@_guard
def _cmd_ssh(args: argparse.Namespace) -> int:
    """Open a shell (or run a command) on a host."""
    from .api import Sandbox

    sb = Sandbox.load(args.name)
    sb.host(args.host)
    argv = sb.ssh_argv(args.host, *args.command) if args.command else \
        ["ssh", "-F", str(sb.ssh_config), args.host]
    os.execvp(argv[0], argv)
    return 0  # not reached


@_guard
def _cmd_inventory(args: argparse.Namespace) -> int:
    """Print the sandbox's Ansible inventory."""
    from .api import Sandbox

    print(Sandbox.load(args.name).inventory_path.read_text(), end="")
    return 0


def _host_named(sb: Any, host: str) -> str:
    """A host by its name (h3) or its address: what an operator's power command gets (`{ip}`)."""
    for h in sb.hosts:
        if host in (h.name, h.ip):
            return str(h.name)
    raise SandboxError(f"no host {host!r} in sandbox {sb.name!r} (hosts: {', '.join(h.name for h in sb.hosts)})")


@_guard
def _cmd_power_off(args: argparse.Namespace) -> int:
    """Power a host off (a power cut unless --soft) and wait until it is gone."""
    from .api import Sandbox
    from .faults import power_off

    sb = Sandbox.load(args.name)
    host = _host_named(sb, args.host)
    took = power_off(sb, host, hard=not args.soft)
    print(f"{host}: powered off ({took:.1f}s)")
    return 0


@_guard
def _cmd_power_on(args: argparse.Namespace) -> int:
    """Boot a powered-off host and wait until systemd finished booting."""
    from .api import Sandbox
    from .faults import power_on

    sb = Sandbox.load(args.name)
    host = _host_named(sb, args.host)
    took = power_on(sb, host)
    print(f"{host}: powered on ({took:.1f}s)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register the `sandbox` verb and its subcommands on the main CLI."""
    p = subparsers.add_parser("sandbox", help="local test hosts, registry, test images and S3 store",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="sandbox_command", metavar="COMMAND")
    sub.required = True

    def named(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--name", default="default", help="sandbox name (default: %(default)s)")

    up = sub.add_parser("up", help="create or complete a sandbox and wait until its hosts are ready")
    named(up)
    up.add_argument("--hosts", type=_positive, help="total number of hosts (existing hosts are kept)")
    up.add_argument("--add", type=_positive, help="add N hosts to the sandbox")
    up.add_argument("--os", type=_oses, default=("debian12",),
                    help="OS of the hosts being created, cycled: debian12, debian13 or a list like "
                         "debian12,debian13 (default: debian12)")
    up.add_argument("--s3", action="store_true", help="also start the S3 store")
    up.add_argument("--images", action="store_true", help="also build and push the test images")
    up.set_defaults(func=_cmd_up)

    down = sub.add_parser("down", help="stop and remove a sandbox (works after a crash too)")
    named(down)
    down.add_argument("--all", action="store_true", help="remove every sandbox")
    down.set_defaults(func=_cmd_down)

    st = sub.add_parser("status", help="show sandboxes, hosts and services")
    st.add_argument("--name", default=None, help="only this sandbox")
    st.set_defaults(func=_cmd_status)

    im = sub.add_parser("images", help="build the test images (cached) and push them to the registry")
    named(im)
    im.add_argument("--only", help="comma-separated catalog keys (default: all)")
    im.set_defaults(func=_cmd_images)

    rg = sub.add_parser("registry", help="(re)start the sandbox registry")
    named(rg)
    rg.set_defaults(func=_cmd_registry)

    s3 = sub.add_parser("s3", help="start the S3 store and print endpoint and credentials")
    named(s3)
    s3.set_defaults(func=_cmd_s3)

    ssh = sub.add_parser("ssh", help="ssh to a host of the sandbox")
    named(ssh)
    ssh.add_argument("host")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=_cmd_ssh)

    inv = sub.add_parser("inventory", help="print the Ansible inventory of the hosts")
    named(inv)
    inv.set_defaults(func=_cmd_inventory)

    off = sub.add_parser("power-off", help="cut a host's power (what an HA drill's --power-off command does)")
    named(off)
    off.add_argument("host", help="host name (h3) or address")
    off.add_argument("--soft", action="store_true", help="a clean shutdown instead of a power cut")
    off.set_defaults(func=_cmd_power_off)

    on = sub.add_parser("power-on", help="boot a powered-off host and wait until it is up")
    named(on)
    on.add_argument("host", help="host name (h3) or address")
    on.set_defaults(func=_cmd_power_on)
