"""Property tests: whatever an operator writes, loading ends in a tenant or in reported problems, never a crash.

Malformed YAML text, random values of every shape for known and unknown keys, Jinja-ish strings, random
unicode and random indentation go through `load_text` and through `omldeploy validate`. The contract:
either a valid tenant, or InventoryError with at least one error whose message is not empty; the CLI exits
0 or 2 (70 would be an internal error) and never prints a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from omldeploy.inventory import InventoryError, Tenant, load_text
from omldeploy.inventory.schema import KEYS
from tests.unit.inventory.conftest import (
    LAYOUTS,
    DataMutation,
    build,
    dump,
    example_text,
    insert_after,
    parse,
    run_cli,
    set_group,
    set_host,
    set_var,
)

# Keep Hypothesis' caches out of the source tree (no example database: every run starts fresh).
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "omldeploy-tests-hypothesis")
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

HOSTS = {"aio": ["omnileads_aio"], "ait": ["omnileads_data", "omnileads_voice", "omnileads_app"],
         "cloud": ["omnileads_data", "omnileads_voice", "omnileads_app"],
         "ha": ["sql_1", "sql_2", "voice_1", "voice_2", "app_1", "app_2", "haproxy_1", "haproxy_2"]}
HA_GROUPS = ["omnileads_data", "omnileads_voice", "omnileads_app", "omnileads_haproxy"]
KEY_NAMES = [*sorted(KEYS), "ansible_host", "ansible_ssh_port", "ansible_port", "ansible_user"]

# ---------------------------------------------------------------------------- strategies

JINJA_TOKENS = [
    "hostvars", "['omnileads_aio']", "['sql_1']", "['no_such_host']", ".omni_ip_lan", ".nope", "omni_ip_lan",
    "data_host", "voice_host", "TZ", "postgres_port", "|bool", "|int", "|default('x')", "|mandatory", "|quote",
    "|upper", "|join(',')", "+", "~", "-", "//", "1", "0", "'a'", "\"b\"", "(", ")", "[", "]", ".", ",", "groups",
    "['all']", "inventory_hostname", "range(3)", "lookup('env', 'HOME')", "__class__", "self", "none", "true",
    " if ", " else ", " not ", " in ", "{", "}", ":", "%", "#",
]
DELIMS = [("{{ ", " }}"), ("{%", "%}"), ("{#", "#}"), ("{{", ""), ("", "}}"), ("{{ ", " }}{{ "), ("", "")]

jinja_text = st.builds(
    lambda d, toks, pre, post: pre + d[0] + "".join(toks) + d[1] + post,
    st.sampled_from(DELIMS),
    st.lists(st.sampled_from(JINJA_TOKENS), max_size=8),
    st.sampled_from(["", "10.0.0.", "x", " "]),
    st.sampled_from(["", ".1", " }}", "{{"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(["", " ", "NULL", "None", "~", "yes", "no", "0123", "230210.10", "1.27.1", "10.10.10.2",
                     "300.1.1.1", "eth0", "UTC", "custom", "cloud", "main", "backup", "https://x", "aws",
                     "172.16.101.0/24", "a@b.c", "\n", "'", '"', ":", "- x", "{a: 1}", "[1, 2]"]),
    jinja_text,
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=6,
)
keys = st.one_of(st.sampled_from(KEY_NAMES), st.text(min_size=1, max_size=20))


@st.composite
def value_mutation(draw: st.DrawFn) -> tuple[str, DataMutation]:
    """A layout and a random value for a random (mostly known) key at a random level."""
    layout = draw(st.sampled_from(LAYOUTS))
    key = draw(keys)
    value = draw(values)
    where = draw(st.sampled_from(["all", "host", "group"] if layout == "ha" else ["all", "host"]))
    if where == "all":
        return layout, set_var(key, value)
    if where == "host":
        return layout, set_host(draw(st.sampled_from(HOSTS[layout])), key, value)
    return layout, set_group(draw(st.sampled_from(HA_GROUPS)), key, value)


@st.composite
def reindented(draw: st.DrawFn) -> str:
    """An example with the indentation of a few lines changed at random."""
    lines = example_text(draw(st.sampled_from(LAYOUTS))).splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        indent = draw(st.sampled_from(["", " ", "  ", "   ", "    ", "      ", "        ", "\t", "  \t"]))
        lines[i] = indent + lines[i].lstrip()
    return "\n".join(lines) + "\n"


@st.composite
def spliced(draw: st.DrawFn) -> str:
    """An example with random text (YAML punctuation, unicode, control characters) inserted somewhere."""
    text_ = example_text(draw(st.sampled_from(LAYOUTS)))
    pos = draw(st.integers(min_value=0, max_value=len(text_)))
    junk = draw(st.one_of(
        st.text(max_size=12),
        st.text(alphabet=":-?[]{}&*!|>'\"%@`#,\n ", max_size=12),
        st.sampled_from(["\n  - x", ": :", "&a ", "*a", "!vault ", "<<: *a", "\n---\n", "\ufeff", "\x00", "\t"]),
    ))
    return text_[:pos] + junk + text_[pos:]


# Plain scalars that YAML 1.1 reads as something else, or cannot read at all.
TRICKY_PLAIN = ["2023-13-45", "2023-01-01", "2001-12-14t21:59:43.10-05:00", "0x_", "0xFF", "0b102", "0o17",
                "0123", "1_000", "1:20", "230210.10", ".inf", "-.nan", "1e5", "!!int eight", "!!float x",
                "!!timestamp x", "!!binary ===", "!!null x", "!!str 5", "!!bool maybe", "9" * 5000, "NULL", "~",
                "Yes", "off", "=", "<<", "&x 1", "*nope", "!unsafe '{{ x }}'", "'{{ hostvars }}'", "|", ">-"]


@st.composite
def raw_line(draw: st.DrawFn) -> str:
    """An example with one line `key: <text>` written raw (unquoted) under all.vars."""
    layout = draw(st.sampled_from(LAYOUTS))
    key = draw(st.sampled_from(KEY_NAMES))
    raw = draw(st.one_of(st.sampled_from(TRICKY_PLAIN),
                         st.text(alphabet="0123456789.-:_xbo!eEtT ", min_size=1, max_size=12)))
    return build(layout, insert_after("  vars:", f"    {key}: {raw}"))


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    layout, mutation = draw(value_mutation())
    return build(layout, mutation)


@st.composite
def extra_vars(draw: st.DrawFn) -> str:
    """Several random key/values added at once under all.vars of an example."""
    layout = draw(st.sampled_from(LAYOUTS))
    data = parse(example_text(layout))
    data["all"]["vars"].update(draw(st.dictionaries(keys, values, min_size=1, max_size=5)))
    return dump(data)


any_inventory = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=" \t\n:-abc{}[]'\"#&*!|>", max_size=200),
    mutated_example(),
    reindented(),
    spliced(),
    extra_vars(),
    raw_line(),
)

# ---------------------------------------------------------------------------- the contract


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-tenant")


def outcome(inventory_text: str, folder: Path) -> Tenant | None:
    """Load and check the contract; return the tenant or None when problems were reported."""
    path = folder / "inventory.yml"
    try:
        tenant = load_text(inventory_text, path, folder, "fuzz")
    except InventoryError as exc:
        errs = [p for p in exc.problems if p.severity == "error"]
        assert errs, exc.problems
        for p in exc.problems:
            assert p.key and p.message.strip(), p
            assert p.file == str(path)
            assert p.line is None or p.line >= 1
            assert p.format().startswith(str(path))
        return None
    assert isinstance(tenant, Tenant)
    assert tenant.hosts
    assert all(isinstance(w, str) and w for w in tenant.warnings)
    return tenant


@FAST
@given(any_inventory)
def test_load_text_never_crashes(folder: Path, inventory_text: str) -> None:
    outcome(inventory_text, folder)


@FAST
@given(value_mutation())
def test_random_value_for_a_key(folder: Path, mutation: tuple[str, DataMutation]) -> None:
    layout, m = mutation
    tenant = outcome(build(layout, m), folder)
    if tenant is not None:  # what loads is typed: tenant-wide settings hold no containers
        assert all(not isinstance(v, dict | list) for v in tenant.settings.values())


@SOME
@given(st.sampled_from(LAYOUTS), st.sampled_from(["data_host", "TZ", "postgres_port", "bucket_name", "dialer_host",
                                                   "omni_ip_wan", "omnileads_version"]), jinja_text)
def test_jinja_expressions(folder: Path, layout: str, key: str, expression: str) -> None:
    outcome(build(layout, set_var(key, expression)), folder)


@SOME
@given(raw_line())
def test_raw_plain_scalars(folder: Path, inventory_text: str) -> None:
    outcome(inventory_text, folder)


@SOME
@given(reindented())
def test_random_indentation(folder: Path, inventory_text: str) -> None:
    outcome(inventory_text, folder)


@SOME
@given(st.sampled_from(LAYOUTS), st.text(min_size=1, max_size=30))
def test_random_unicode_key_and_value(folder: Path, layout: str, word: str) -> None:
    assume(word not in KEYS and not word.startswith("ansible_"))
    data = parse(example_text(layout))
    data["all"]["vars"][word] = word
    try:
        inventory_text = dump(data)
    except yaml.YAMLError:  # not representable as YAML at all: nothing to feed the loader
        assume(False)
    assert outcome(inventory_text, folder) is None  # an unknown key is always an error


@SOME
@given(mutated_example())
def test_determinism(folder: Path, inventory_text: str) -> None:
    """The same text always gives the same problems in the same order (operators diff CI logs)."""

    def problems() -> list[str]:
        try:
            load_text(inventory_text, folder / "inventory.yml", folder, "fuzz")
        except InventoryError as exc:
            return [p.format() for p in exc.problems]
        return []

    assert problems() == problems()


# ---------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-instances")
    (root / "t1").mkdir()
    return root


def _cli_contract(instances: Path, content: bytes) -> None:
    (instances / "t1" / "inventory.yml").write_bytes(content)
    result = run_cli("--instances", str(instances), "validate", "--tenant", "t1")
    assert result.code in (0, 2), result.err
    assert "Traceback" not in result.err + result.out
    assert "internal error" not in result.err
    if result.code == 2:
        assert "error" in result.err
        assert str(instances / "t1" / "inventory.yml") in result.err
    else:
        assert "valid" in result.out


@CLI
@given(any_inventory)
def test_cli_validate_exit_code(instances: Path, inventory_text: str) -> None:
    _cli_contract(instances, inventory_text.encode("utf-8", "surrogatepass"))


@SOME
@given(st.binary(max_size=300))
def test_cli_validate_raw_bytes(instances: Path, content: bytes) -> None:
    _cli_contract(instances, content)
