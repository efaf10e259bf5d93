"""The host's owner marker (issue 12, H2, host side): the first stage claims the host for its tenant,
and every later stage or activate of another tenant is refused before anything on the host changes."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.apply.test_engine_plan import host_module


class FakeModule:
    def __init__(self, check_mode: bool = False) -> None:
        self.check_mode = check_mode


@pytest.fixture
def mod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    m = host_module()
    monkeypatch.setattr(m, "OWNER_FILE", str(tmp_path / "etc/omnileads/omldeploy-owner"))
    monkeypatch.setattr(m, "STATE_ROOT", str(tmp_path / "state"))

    def untouchable(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a refused tenant reached the host")

    for name in ("ensure_podman", "present_images", "pull", "write_atomic", "systemctl", "start_units"):
        monkeypatch.setattr(m, name, untouchable)
    return m


def test_the_first_stage_claims_the_host(mod: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[str, bytes, int]] = []
    monkeypatch.setattr(mod, "write_atomic", lambda p, d, m: writes.append((p, d, m)))
    assert mod.claim("acme", check=True) is True and writes == []  # --check says so, writes nothing
    assert mod.claim("acme", check=False) is True
    assert writes == [(mod.OWNER_FILE, b"acme\n", 0o644)]


def test_another_tenant_is_refused_before_anything_is_touched(mod: ModuleType) -> None:
    marker = Path(mod.OWNER_FILE)
    marker.parent.mkdir(parents=True)
    marker.write_text("acme\n")
    assert mod.claim("acme", check=False) is False  # its own tenant: nothing to write
    params = {"tenant": "other", "unit_style": "auto", "units": [], "directories": [{"path": "/x", "mode": "0755"}],
              "files": [], "extra_images": [], "partial": False}
    for check in (False, True):
        with pytest.raises(RuntimeError) as err:
            mod.stage(FakeModule(check), params)
        msg = str(err.value)
        assert "belongs to tenant 'acme'" in msg and "not to 'other'" in msg and "nothing was changed" in msg
        assert mod.OWNER_FILE in msg
    with pytest.raises(RuntimeError, match="belongs to tenant 'acme'"):
        mod.activate(FakeModule(), {**params, "host_units": [], "force_restart": [], "drain": None})
    with pytest.raises(RuntimeError, match="belongs to tenant 'acme'"):
        mod.recycle(FakeModule(), params)
    assert marker.read_text() == "acme\n"
    assert not Path(mod.STATE_ROOT).exists()  # not even the other tenant's state folder was made
