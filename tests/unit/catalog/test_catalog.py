"""The release catalog against the components: every deployable release resolves to images a component
runs, and renders to exactly the tags it names; undeployable releases say why; the data stays coherent."""

from __future__ import annotations

import datetime
import itertools
import json
from pathlib import Path

import pytest

from omldeploy.catalog.releases import find_release, images, not_deployed, releases, tag_keys
from omldeploy.components.registry import all_components
from omldeploy.inventory import InventoryError
from omldeploy.inventory.schema import KEYS, VERSION_KEYS
from omldeploy.render.build import render_tenant
from omldeploy.sandbox.images.build import targets_of
from omldeploy.sandbox.images.catalog import load_catalog
from omldeploy.sandbox.images.specs import SPECS
from omldeploy.sandbox.standin.entry import ROLES
from tests.unit.conftest import MakeTenant
from tests.unit.inventory.conftest import run_cli

DEPLOYABLE = [r.name for r in releases() if r.deployable]
# Releases of reference/releases.md §3 that issue 11 asked for by name: a data file losing one fails here.
REQUIRED = ("1.31.0", "1.32.0", "1.32.1", "1.32.2", "1.32.3", "1.33.0", "1.33.1", "1.33.2", "1.33.3", "1.33.4")


def test_every_image_key_is_run_by_a_component_and_every_component_image_is_catalogued() -> None:
    used = {c.image for c in all_components()} | {k for c in all_components() for k in c.hook_image_keys}
    assert used <= set(images()), used - set(images())
    assert set(images()) - used == set(), "catalog images no component runs"


def test_every_tag_key_is_an_inventory_key() -> None:
    for key in tag_keys():
        assert key in KEYS and KEYS[key].kind == "version", key


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_deployable_release_tags_all_select_known_images(name: str) -> None:
    rel = find_release(name)
    assert rel is not None and rel.refusal == ""
    for key in rel.tags:
        assert key in tag_keys(), f"{name}: {key} selects no catalogued image"
    assert set(VERSION_KEYS) <= set(rel.tags), f"{name} leaves required version keys unset"


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_a_release_renders_exactly_its_tags(name: str, make_tenant: MakeTenant) -> None:
    """AIO tenant naming only `omnileads_release`: every tag of the release is some unit's image, optional
    components run exactly when the release names them."""
    rel = find_release(name)
    assert rel is not None
    tenant = make_tenant("aio", drop=VERSION_KEYS, vars={"omnileads_release": name})
    bundle = render_tenant(tenant)
    unit_images = {u.name: u.image for hb in bundle.hosts for u in hb.units}
    refs = set(unit_images.values())
    for key, value in rel.tags.items():
        ref = tag_keys()[key]
        repo, tag = ref.split(value)
        expect = f"docker.io/{repo}:{tag}"
        assert expect in refs, f"{name}: {key}={value} not deployed (units: {sorted(refs)})"
    assert ("fastagi" in unit_images) == ("fastagi_version" in rel.tags)
    assert ("ami" in unit_images) == ("astami_version" in rel.tags)
    cron_key = "omlcron_version" if "omlcron_version" in rel.tags else "omnileads_version"
    assert unit_images["omlcron"].endswith(":" + rel.tags[cron_key])


def test_releases_the_issue_names_are_present_and_1x_all_deployable() -> None:
    names = [r.name for r in releases()]
    for name in REQUIRED:
        assert name in names
    assert all(r.deployable for r in releases() if not r.name.startswith("2."))


def test_2x_releases_are_listed_but_refused_with_the_reason() -> None:
    two = [r for r in releases() if r.name.startswith("2.")]
    assert two, "2.x releases are listed"
    for rel in two:
        assert not rel.deployable
        assert "RabbitMQ" in rel.refusal and "does not deploy" in rel.refusal
        assert all(k in not_deployed() or k in tag_keys() for k in rel.tags)


def test_dates_are_iso_and_in_release_order() -> None:
    dates = [datetime.date.fromisoformat(r.date) for r in releases()]
    assert dates == sorted(dates)
    assert len({r.name for r in releases()}) == len(releases())


def test_migrations_only_where_the_web_app_image_changes() -> None:
    """Migrations live in the omlapp image: a release keeping the previous app tag cannot bring any,
    and the first release (a fresh schema) does."""
    rels = releases()
    assert rels[0].migrations
    for prev, rel in itertools.pairwise(rels):
        if rel.tags["omnileads_version"] == prev.tags["omnileads_version"]:
            assert not rel.migrations, f"{rel.name} keeps omlapp {prev.tags['omnileads_version']}"


def test_1_32_2_uses_the_official_postgres_image() -> None:
    rel = find_release("1.32.2")
    assert rel is not None
    assert images()["postgres"].split(rel.tags["postgres_version"]) == ("library/postgres", "14.9-bullseye")
    old = find_release("1.32.1")
    assert old is not None
    assert images()["postgres"].split(old.tags["postgres_version"]) == ("omnileads/postgres", "230624.01")


def test_sandbox_builds_every_image_key_with_a_stand_in() -> None:
    catalog = load_catalog()
    assert set(catalog) == set(images())
    for key, entry in catalog.items():
        if entry.alias_of:
            assert catalog[entry.alias_of].repo == entry.repo  # built with the image it aliases
            continue
        assert key in SPECS, f"no sandbox spec for {key}"
        assert SPECS[key].role in ROLES, f"no stand-in role {SPECS[key].role}"
        tags = {(repo, tag) for repo, tag, _broken in targets_of(entry)}
        assert {(entry.repo, entry.default), (entry.repo, entry.alt), (entry.repo, entry.default + "-broken")} <= tags
    extra = {(r, t) for r, t, _b in targets_of(catalog["postgres"])}
    assert ("library/postgres", "14.9-bullseye") in extra


def test_releases_verb_json_and_text() -> None:
    result = run_cli("releases", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    by_name = {r["name"]: r for r in data["releases"]}
    assert set(by_name) == {r.name for r in releases()}
    assert by_name["1.32.1"]["migrations"] is False and by_name["1.32.2"]["migrations"] is True
    assert by_name["2.2.2"]["deployable"] is False and "RabbitMQ" in by_name["2.2.2"]["refusal"]
    assert by_name["1.33.4"]["date"] == "2024-04-11"
    assert data["images"]["fastagi"]["optional"] is True
    text = run_cli("releases")
    assert text.code == 0
    header = text.out.splitlines()[0].split()
    assert header[:4] == ["release", "date", "migrations", "deployable"]
    row = next(line for line in text.out.splitlines() if line.startswith("2.0.0 "))
    assert " NO " in row and "RabbitMQ" in row


def test_validate_refuses_an_undeployable_release(make_tenant: MakeTenant, tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        make_tenant("aio", drop=VERSION_KEYS, vars={"omnileads_release": "2.2.2"})
    errs = [p for p in info.value.problems if p.severity == "error"]
    assert [p.key for p in errs] == ["omnileads_release"]
    assert "RabbitMQ" in errs[0].message and errs[0].line is not None
    assert "1.33.4" in str(errs[0].allowed) and "2.2.2" not in str(errs[0].allowed)
    result = run_cli("--instances", str(tmp_path / "instances"), "validate", "--tenant", "t1")
    assert result.code == 2 and "Traceback" not in result.err
    assert "omnileads_release: release 2.2.2 cannot be deployed: needs RabbitMQ" in result.err
