"""Load a host-side file (an Ansible module, a module_utils file, a shipped script) as a Python module.

Host modules import their shared code as `ansible.module_utils.<name>`, which only exists once Ansible
ships it; tests register each module_utils file under that name first (`register=True`), so the module
imports exactly the code the hosts run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ANSIBLE = Path(__file__).resolve().parents[1] / "src" / "omldeploy" / "apply" / "ansible"


def load(name: str, path: Path, *, register: bool = False) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    mod = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def module_utils(*names: str) -> None:
    """Make `ansible.module_utils.<name>` importable for each name, from this checkout."""
    for name in names:
        load(f"ansible.module_utils.{name}", ANSIBLE / "module_utils" / f"{name}.py", register=True)
