"""``dataloader json-schema``: the recipe schema an editor uses, checked with the jsonschema library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from dataloader.cli import cli
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parents[3]
RECIPES = Path(__file__).parent / "recipes"


def printed_schema() -> dict:
    result = CliRunner().invoke(cli, ["json-schema"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def errors(schema: dict, recipe: dict) -> list[tuple[str, str]]:
    validator = jsonschema.Draft202012Validator(schema)
    return [(".".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(recipe)]


def names(section: dict, key: str) -> list[str]:
    """The plugin names a section's discriminating key accepts (a template is accepted too)."""
    choice = section["properties"][key]
    return choice.get("enum") or choice["anyOf"][0]["enum"]


VALID = {
    "name": "orders",
    "source": {"type": "memory", "table": "a", "port": "{{ env_var('PORT', '5432') }}"},
    "transform": {"steps": [{"type": "rename_columns", "mapping": {"a": "b"}}, {"type": "upper", "columns": ["b"]}]},
    "destination": {"type": "memory", "table": "b", "write_mode": "overwrite"},
    "runtime": {"batch_size": 500},
    "quality_checks": [{"column": "b", "check": "not_null", "action": "dlq"}],
    "state": {"backend": "local", "state_dir": ".state"},
}


def test_schema_lists_every_plugin_kind_discriminated_by_its_key(memory_host):  # noqa: F811
    schema = printed_schema()
    props = schema["properties"]
    assert "memory" in names(props["source"], "type")
    assert "rename_columns" in names(props["transform"]["properties"]["steps"]["items"], "type")
    assert "not_null" in names(props["quality_checks"]["items"], "check")
    assert names(props["state"], "backend") == ["local"]
    assert errors(schema, VALID) == []


@pytest.mark.parametrize(
    ("change", "where", "fragment"),
    [
        (lambda r: r["destination"].update(tabel="b"), "destination", "'tabel' was unexpected"),
        (lambda r: r["source"].update(write_mode="merge"), "source", "'write_mode' was unexpected"),
        (lambda r: r["transform"]["steps"][0].update(mapings={}), "transform.steps.0", "'mapings' was unexpected"),
        (lambda r: r["runtime"].update(batch_size="lots"), "runtime.batch_size", "not valid under any"),
        (lambda r: r["quality_checks"][0].update(action="explode"), "quality_checks.0.action", "not valid under any"),
        (lambda r: r.update(sorce={}), "", "'sorce' was unexpected"),
        (lambda r: r["source"].update(type="memroy"), "source.type", "not valid under any"),
    ],
)
def test_schema_flags_a_typo_or_a_wrong_type(memory_host, change, where, fragment):  # noqa: F811
    recipe = json.loads(json.dumps(VALID))
    change(recipe)
    found = errors(printed_schema(), recipe)
    assert any(path == where and fragment in message for path, message in found), found


def test_every_test_recipe_that_validate_accepts_passes_the_schema(memory_host):  # noqa: F811
    schema = printed_schema()
    for path in [RECIPES / "valid.yaml", *sorted((RECIPES / "chain").rglob("*.yaml"))]:
        assert errors(schema, yaml.safe_load(path.read_text())) == [], path


def test_every_example_recipe_passes_the_schema_of_the_installed_connectors():
    for package in ("dataloader_duckdb", "dataloader_filestore", "dataloader_postgres"):
        pytest.importorskip(package)
    from dataloader.plugins import reset

    reset()
    try:
        schema = printed_schema()
    finally:
        reset()
    examples = sorted((ROOT / "examples" / "recipes").glob("*.yaml"))
    assert len(examples) >= 3
    for path in examples:
        assert errors(schema, yaml.safe_load(path.read_text())) == [], path
    quickstart = yaml.safe_load((ROOT / "examples/recipes/quickstart.yaml").read_text())
    quickstart["source"]["options"] = {"delimitr": ";"}
    assert ("source.options", "Additional properties are not allowed ('delimitr' was unexpected)") in errors(
        schema, quickstart
    )
