"""`omldeploy` entry point: parses the verb, maps errors to exit codes, never shows a traceback.

Exit codes: 0 ok, 1 the operation failed, 2 bad input (inventory, arguments), 3 action not available
in this version, 4 tenant busy (lock held), 70 internal error (a bug: rerun with OMLDEPLOY_DEBUG=1).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from omldeploy.cli.output import Console
from omldeploy.cli.parser import Parser, build_parser
from omldeploy.inventory.problems import InventoryError
from omldeploy.ops.upgrade import UpgradeError
from omldeploy.state.lock import TenantBusy

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_UNAVAILABLE, EXIT_BUSY, EXIT_BUG = 0, 1, 2, 3, 4, 70


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INPUT
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT if args.verb is None else EXIT_OK
    console = Console()
    from omldeploy.inventory import vaultsource

    vaultsource.configure(getattr(args, "vault_password_file", None), bool(getattr(args, "ask_vault_pass", False)))
    if args.json and not getattr(args, "json_ok", False):
        console.error(f"--json is not available for `{args.verb_path}` (it is for: validate, plan, status, drift, "
                      "fleet status|drift|upgrade|drill-restore, logs, releases, tenant list, backups list, "
                      "certs status, rollback --list); "
                      "nothing was done")
        return EXIT_INPUT
    try:
        return int(args.func(args))
    except InventoryError as exc:
        console.problems(exc.problems)
        return EXIT_INPUT
    except TenantBusy as exc:
        console.error(f"{exc}; wait for it to finish (nothing was done)")
        return EXIT_BUSY
    except UpgradeError as exc:
        console.error(f"{exc}; nothing was done")
        return EXIT_INPUT
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the promise: no traceback for the operator unless asked
        if os.environ.get("OMLDEPLOY_DEBUG"):
            traceback.print_exc()
        console.error(f"internal error: {type(exc).__name__}: {exc} "
                      "(this is a bug; rerun with OMLDEPLOY_DEBUG=1 for details)")
        return EXIT_BUG


__all__ = ["Parser", "build_parser", "entry", "main"]


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
