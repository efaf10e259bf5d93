"""Property test (issue 12): generated hostile inventories always end in exit 0 or 2, fast and small.

Three families of shapes, mixed: host names (Ansible patterns, paths, quotes, newlines), YAML alias
towers (width**depth expansions), and Jinja expressions built from the pieces of known bombs (`%` widths,
`center()`, repetition, powers, `range()`, loops, `format`) with sizes from 1 to 10**9. Each inventory
goes through the real CLI `validate` (in-process, as `omldeploy validate` runs it): exit 0 or 2, never 70,
no traceback, under 5 s each; the process' peak memory grows by less than 256 MB over the whole run.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from tests.unit.inventory.conftest import build, run_cli, set_var

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "omldeploy-tests-hypothesis")

SIZES = st.sampled_from([1, 3, 64, 1000, 10_000, 10**6, 10**9])
HOST_CHARS = "abz09_-.[]:,/ '\"\n\t{}%$;\u2028"

host_names = st.one_of(
    st.text(alphabet=HOST_CHARS, min_size=1, max_size=12),
    st.sampled_from(["aio[1:2]", "app:2222", "a,b", "x y", "/etc/x", "../x", "a'b", "a\nb", "omnileads_aio",
                     "aio-1", "node.example.com", "a" * 70]),
)


@st.composite
def jinja_bombs(draw: st.DrawFn) -> str:
    n, m = draw(SIZES), draw(SIZES)
    piece = draw(st.sampled_from([
        f"'%{n}s' % 'a'", f"'%.{n}f' % 1", f"'%*d' % ({n}, 1)", f"'a'.center({n})", f"'a'|center({n})",
        f"'a' * {n}", f"('a' * {n}) * {m}", f"[[1] * {n}] * {m}", f"{n} ** {m}", f"range({n})|list",
        f"range({n})|join(',')", f"'{{:>{n}}}'.format(1)", f"'x'|indent({n})", f"'%{n}d'|format(1)",
        f"'ab'.replace('', 'c' * {n})", f"('a' * {n}) ~ ('b' * {m})", "lookup('pipe', 'true')",
    ]))
    shape = draw(st.sampled_from(["{{ P }}", "{% for i in range(" + str(n) + ") %}{{ P }}{% endfor %}",
                                  "{% raw %}{{ P }}{% endraw %}", "{{ P }}{{ P }}", "{% if true %}{{ P }}{% endif %}"]))
    return shape.replace("P", piece)


@st.composite
def alias_tower(draw: st.DrawFn) -> str:
    width, depth = draw(st.integers(1, 10)), draw(st.integers(1, 9))
    lines = ["    l0: &l0 [" + ", ".join(['"x"'] * width) + "]"]
    for i in range(1, depth):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@st.composite
def hostile_inventory(draw: st.DrawFn) -> str:
    inv = build("aio", *[set_var(k, draw(jinja_bombs())) for k in
                         draw(st.lists(st.sampled_from(["email_default_from", "fqdn", "TZ", "ami_user"]),
                                       max_size=2, unique=True))])
    if draw(st.booleans()):
        name = draw(host_names)
        inv = inv.replace("    omnileads_aio:\n      omlaio", f"    {json.dumps(name)}:\n      omlaio", 1)
    if draw(st.booleans()):
        inv = inv.replace("  vars:\n", "  vars:\n" + draw(alias_tower()), 1)
    return inv


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_inventory())
def _validate_ends_cleanly(inventory_text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "t1"
        folder.mkdir()
        (folder / "inventory.yml").write_text(inventory_text, encoding="utf-8")
        t0 = time.monotonic()
        result = run_cli("--instances", tmp, "validate", "--tenant", "t1")
        elapsed = time.monotonic() - t0
    assert result.code in (0, 2), (result.code, result.out, result.err)
    assert "Traceback" not in result.out + result.err
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_hostile_inventories_end_in_0_or_2_within_limits() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _validate_ends_cleanly()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < 256 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MB"
