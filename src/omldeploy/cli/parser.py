"""The `omldeploy` argument parser: verbs, global options accepted at every level, help grouped by purpose.

Global options (`--instances`, `-v/--verbose`, `--json`) are declared once here and copied onto every
sub-parser, because operators type them after the verb (`omldeploy validate --tenant T --instances D`)
as often as before it. The copies default to SUPPRESS, so a sub-parser only sets a value the operator
actually typed there; argparse applies the deepest sub-parser last, hence "given twice, the one after the
verb wins". A verb that can print JSON says so by declaring `--json` itself; `--json` on any other verb
is refused by main() instead of being silently ignored.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from omldeploy import __version__

EXIT_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line hint instead of a usage dump for unknown verbs."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"omldeploy: error: {message}\n")
        raise SystemExit(EXIT_INPUT)


@dataclass(frozen=True)
class GlobalOption:
    flags: tuple[str, ...]
    dest: str
    help: str
    metavar: str | None = None  # None: a flag (store_true)


GLOBAL_OPTIONS = (
    GlobalOption(("--instances",), "instances",
                 "folder holding <tenant>/inventory.yml (default: $OMLDEPLOY_INSTANCES or ./instances)", "DIR"),
    GlobalOption(("--vault-password-file",), "vault_password_file",
                 "file holding the Ansible Vault password for encrypted inventory values or vault.yml "
                 "(default: $ANSIBLE_VAULT_PASSWORD_FILE)", "PATH"),
    GlobalOption(("--ask-vault-pass",), "ask_vault_pass", "ask for the Ansible Vault password on the terminal"),
    GlobalOption(("-v", "--verbose"), "verbose", "stream Ansible's own output (verbs that run Ansible)"),
    GlobalOption(("--json",), "json",
                 "machine-readable output on stdout (read verbs: validate, plan, status, logs, history, releases, "
                 "drift, fleet status|drift|upgrade|drill-restore, tenant list, backups list, certs status, "
                 "rollback --list; others refuse it)"),
)
GLOBAL_NOTE = ("Global options may be given before or after the verb, at any level "
               "(`omldeploy backups list --tenant T --json`); given twice, the one after the verb wins.")

# Verb -> purpose, in the order `omldeploy --help` shows them. Every verb must be here (a unit test checks),
# otherwise it lands under "other" where nobody looks for it.
GROUPS: dict[str, tuple[str, ...]] = {
    "tenants": ("tenant", "validate"),
    "inspection (no host changed)": ("plan", "render", "releases", "status", "drift", "logs", "history"),
    "fleet (every tenant)": ("fleet", "dashboard"),
    "deploy": ("install", "upgrade", "rollback", "update"),
    "re-apply one component or group": ("app", "voice", "observability", "postgres", "redis", "minio",
                                        "asterisk", "kamailio", "rtpengine", "nginx", "websockets", "cron"),
    "maintenance": ("restart", "restart_core", "restart_django", "restart_asterisk", "recycle", "certs"),
    "backups": ("backup", "restore", "backups"),
    "secrets": ("secrets",),
    "HA": ("ha", "haproxy", "keepalived", "sentinel", "pgsql_node_recovery_main", "pgsql_node_takeover_main",
           "redis_node_takeover_main", "pgsql_node_recovery_backup"),
    "sandbox (local test hosts)": ("sandbox",),
    "shell": ("completion",),
}


def build_parser() -> Parser:
    """The whole verb tree, with global options spread onto every sub-parser and the help grouped."""
    from omldeploy.cli import actions, certs, completion, fleet, ha, history, inspect, logs, secrets, tenants, web

    parser = Parser(prog="omldeploy", description="Deploy and operate OMniLeads tenants.",
                    usage="omldeploy [-h] [--version] [--instances DIR] [--vault-password-file PATH] "
                          "[--ask-vault-pass] [-v] [--json] VERB [options]",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"omldeploy {__version__}")
    top = parser.add_argument_group("global options (also accepted after the verb; given twice, that one wins)")
    for opt in GLOBAL_OPTIONS:
        if opt.metavar:
            top.add_argument(*opt.flags, dest=opt.dest, metavar=opt.metavar, help=opt.help)
        else:
            top.add_argument(*opt.flags, dest=opt.dest, action="store_true", help=opt.help)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser, help=argparse.SUPPRESS,
                                prog="omldeploy")
    inspect.add_parsers(sub)
    tenants.add_parsers(sub)
    actions.add_parsers(sub)
    ha.add_parsers(sub)
    logs.add_parsers(sub)
    history.add_parsers(sub)
    fleet.add_parsers(sub)
    web.add_parsers(sub)
    certs.add_parsers(sub)
    secrets.add_parsers(sub)
    backups = actions._backups()
    if backups is not None:
        backups.add_parsers(sub)  # `omldeploy backups list|verify|prune`
    try:
        from omldeploy.sandbox.cli import add_parser as add_sandbox
    except ImportError:  # the sandbox is optional at runtime (it needs root and test tooling)
        pass
    else:
        add_sandbox(sub)
    completion.add_parsers(sub)
    for name, child in children(parser):
        spread_globals(child, (name,))
    parser.epilog = grouped_verbs(parser) + "\n\n" + textwrap.fill(GLOBAL_NOTE, 100)
    return parser


def children(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Direct sub-parsers by name (verbs, or sub-verbs of a verb such as `backups list`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Parser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def spread_globals(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
    """Accept the global options on `parser` and all below it, without shadowing values given earlier.

    An option the verb declared itself (`--json` on plan, `-v` on install) keeps its own help but gets
    a SUPPRESS default: otherwise its `False` would overwrite a `--json` typed before the verb.
    """
    declared_json = False
    group: argparse._ArgumentGroup | None = None
    for opt in GLOBAL_OPTIONS:
        own = [parser._option_string_actions[f] for f in opt.flags if f in parser._option_string_actions]
        if own:
            for action in own:
                if action.dest != opt.dest:
                    raise ValueError(f"{parser.prog}: {action.option_strings} clashes with global {opt.flags}")
                action.default = argparse.SUPPRESS
                action.help = action.help or opt.help
            declared_json = declared_json or opt.dest == "json"
            continue
        if group is None:
            group = parser.add_argument_group(
                "global options (also accepted before the verb; given twice, this position wins)")
        if opt.metavar:
            group.add_argument(*opt.flags, dest=opt.dest, metavar=opt.metavar, default=argparse.SUPPRESS,
                               help=opt.help)
        else:
            group.add_argument(*opt.flags, dest=opt.dest, action="store_true", default=argparse.SUPPRESS,
                               help=opt.help)
    parser.set_defaults(json_ok=declared_json, verb_path=" ".join(path))
    for name, child in children(parser):
        spread_globals(child, (*path, name))


def verb_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Verb name -> its one-line help, as registered."""
    sub = subparsers_action(parser)
    if sub is None:
        return {}
    return {a.dest: a.help or "" for a in sub._choices_actions}


def grouped_verbs(parser: argparse.ArgumentParser) -> str:
    """Every verb under its purpose, with its sub-verbs and one-line description."""
    sub = subparsers_action(parser)
    assert sub is not None
    helps = verb_help(parser)
    names = list(sub.choices)
    placed = {v for verbs in GROUPS.values() for v in verbs}
    groups = {**GROUPS, "other": tuple(n for n in names if n not in placed)}
    labels = {}
    for name, child in sub.choices.items():
        inner = subparsers_action(child)
        labels[name] = f"{name} {'|'.join(inner.choices)}" if inner is not None else name
    width = min(max(len(x) for x in labels.values()), 26) + 2
    lines: list[str] = []
    for title, verbs in groups.items():
        present = [v for v in verbs if v in sub.choices]
        if not present:
            continue
        lines.append(f"{title}:")
        for v in present:
            label = labels[v]
            pad = f"\n{' ' * (width + 2)}" if len(label) >= width else " " * (width - len(label))
            lines.append(f"  {label}{pad}{helps.get(v, '')}")
        lines.append("")
    return "verbs (omldeploy VERB --help for its options):\n\n" + "\n".join(lines).rstrip()
