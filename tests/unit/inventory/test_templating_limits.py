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
