"""`omldeploy certs status|renew`: expiry of the tenant's TLS certificates and their renewal (issue 12 M4)."""

from __future__ import annotations

import argparse
from typing import Any

from omldeploy.cli import context
from omldeploy.cli.output import Console
from omldeploy.cli.parser import EXIT_INPUT


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("certs", help="TLS certificates: expiry per certificate, renewal of the selfsigned one")
    csub = p.add_subparsers(dest="certs_verb", metavar="status|renew", parser_class=type(p))
    st = csub.add_parser("status", help="each certificate's issuer, names, expiry and days left (exit 1 when one "
                                        "expires within 30 days or has expired)")
    context.add_tenant_arg(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)
    rn = csub.add_parser("renew", help="re-issue the selfsigned server certificate from the tenant CA (custom: "
                                       "push the current cert.pem/key.pem), restart only what uses it")
    context.add_tenant_arg(rn)
    rn.add_argument("--verbose", "-v", action="store_true", help="stream Ansible's own output")
    rn.set_defaults(func=_renew)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_INPUT)[1])


def _status(args: argparse.Namespace) -> int:
    from omldeploy.ops.certs import describe

    tenant = context.load(args)
    console = Console()
    infos = describe(tenant)
    code = 1 if any(i.due for i in infos) else 0
    if args.json:
        console.json({"tenant": tenant.name, "certs": tenant.settings.opt("certs"),
                      "certificates": [i.as_dict() for i in infos]})
        return code
    if not infos:
        console.say(f"tenant {tenant.name} (certs: {tenant.settings.opt('certs')}): no certificate in the tenant "
                    "folder yet (the first render or install makes the selfsigned ones)")
        return 0
    rows = [(i.role, i.issuer, i.not_after.strftime("%Y-%m-%d"), str(i.days_left), ", ".join(i.names) or i.subject)
            for i in infos]
    console.table(("certificate", "issuer", "expires", "days left", "names"), rows, indent="")
    for i in infos:
        if i.due:
            console.warn(f"{i.role} certificate {expiry_text(i.days_left)}: {renew_hint(i.role, tenant.name)}")
    return code


def expiry_text(days_left: int) -> str:
    return "EXPIRED" if days_left < 0 else f"expires in {days_left} day(s)"


def renew_hint(role: str, tenant: str) -> str:
    """What the operator does about a certificate that expires soon."""
    if role == "server":
        return f"omldeploy certs renew --tenant {tenant} (install also renews it)"
    if role == "custom":
        return f"replace cert.pem and key.pem in the tenant folder, then: omldeploy certs renew --tenant {tenant}"
    return ("move .omldeploy/pki away, then: omldeploy install (a new tenant CA: clients must trust the new "
            "ca.pem)")


def _renew(args: argparse.Namespace) -> int:
    from omldeploy.ops.certs import renew
    from omldeploy.ops.converge import Reporter

    tenant = context.load(args)
    console = Console()
    return renew(tenant, Reporter(say=console.say, warn=console.warn, verbose=bool(args.verbose)))
