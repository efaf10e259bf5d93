"""Inventory expressions cannot hang validation with huge arithmetic."""

from __future__ import annotations

import pytest

from omldeploy.inventory.templating import _ENV, TemplateError


@pytest.mark.parametrize("expr", ["{{ 2**100000000 }}", "{{ 'x' * 100000000 }}", "{{ [1] * 10**6 }}"])
def test_huge_results_are_refused(expr: str) -> None:
    with pytest.raises(TemplateError, match="too large"):
        _ENV.from_string(expr).render()


def test_ordinary_arithmetic_still_works() -> None:
    assert _ENV.from_string("{{ 2**10 }} {{ 'ab' * 3 }}").render() == "1024 ababab"


def test_numbers_that_are_not_widths_stay_allowed() -> None:
    """Only widths and counts are bounded: a default port or a dict lookup default is not a size."""
    assert _ENV.from_string("{{ x|default(5432) }} {{ {'a': 1}.get('b', 65535) }}").render() == "5432 65535"
    assert _ENV.from_string("{{ range(1, 4)|join(',') }} {{ '%05d' % 3 }}").render() == "1,2,3 00003"


def test_backstops_output_size_source_length_and_time(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """The caps that do not depend on a single operator: the whole value's size, the template's length,
    and the wall-clock budget of one inventory's expressions."""
    from pathlib import Path

    from omldeploy.inventory import InventoryError, load_text, templating
    from tests.unit.inventory.conftest import build, set_var

    def problems(value: str) -> str:
        with pytest.raises(InventoryError) as info:
            load_text(build("aio", set_var("email_default_from", value)), Path("/x/inventory.yml"), Path("/x"), "x")
        return "\n".join(p.format() for p in info.value.problems if p.key == "email_default_from")

    assert "over 20000 characters" in problems("{{ 'x' * 9000 }}{{ 'x' * 9000 }}{{ 'x' * 9000 }}")
    assert "longer than 4096" in problems("{{ 1 }}" + "x" * 5000)
    monkeypatch.setattr(templating, "TIME_BUDGET", -1.0)
    assert "took more than" in problems("{{ 1 }}")
