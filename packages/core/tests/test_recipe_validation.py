"""Validating recipes: core models, plugin config models, capabilities, and how problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataloader.errors import RecipeError
from dataloader.recipe import Recipe, RuntimeConfig, StepConfig, from_yaml
from test_recipe_fakes import MemoryConfig, UpperConfig, memory_host  # noqa: F401  (fixture)

RECIPES = Path(__file__).parent / "recipes"
pytestmark = pytest.mark.usefixtures("memory_host")


def base(**changes) -> dict:
    data = {"name": "v", "source": {"type": "memory", "table": "a"}, "destination": {"type": "memory", "table": "b"}}
    data.update(changes)
    return data


def problems_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(data)
    return [(key, message) for _file, key, message in info.value.context["problems"]]


def test_sections_are_the_plugins_own_config_instances():
    recipe = from_yaml(RECIPES / "valid.yaml", env={})
    assert isinstance(recipe.source, MemoryConfig)
    assert isinstance(recipe.destination, MemoryConfig)
    step = recipe.transform.steps[0]
    assert isinstance(step, StepConfig)
    assert (step.type, step.index) == ("upper", 0)
    assert isinstance(step.config, UpperConfig)


def test_runtime_defaults():
    recipe = Recipe.from_dict(base())
    assert recipe.runtime == RuntimeConfig()
    assert (recipe.runtime.batch_size, recipe.runtime.parallelism, recipe.runtime.queue_size) == (10_000, 1, 4)
    assert recipe.runtime.retries.max_attempts == 3
    assert recipe.quality_checks == []
    assert recipe.state is None


def test_unknown_connector_suggests_the_closest_name():
    [(key, message)] = problems_of(base(source={"type": "memroy", "table": "a"}))
    assert key == "source.type"
    assert message.startswith("unknown connector 'memroy'; did you mean 'memory'? installed: memory, readonly")


def test_unknown_transform_suggests_the_closest_name():
    [(key, message)] = problems_of(base(transform={"steps": [{"type": "uppr"}]}))
    assert key == "transform.steps.0.type"
    assert "unknown transform 'uppr'; did you mean 'upper'?" in message


def test_unknown_state_backend_suggests_the_closest_name():
    [(key, message)] = problems_of(base(state={"backend": "locl"}))
    assert key == "state.backend"
    assert "unknown state backend 'locl'; did you mean 'local'?" in message


def test_state_section_is_validated_by_the_backends_model():
    recipe = Recipe.from_dict(base(state={"backend": "local", "state_dir": "/tmp/x"}))
    assert recipe.state.config.state_dir == "/tmp/x"
    [(key, message)] = problems_of(base(state={"backend": "local", "folder": "x"}))
    assert key == "state.folder"
    assert message == "unknown key (allowed: state_dir)"


def test_unknown_key_in_a_plugin_section_lists_the_allowed_keys():
    [(key, message)] = problems_of(base(source={"type": "memory", "table": "a", "hots": "x"}))
    assert key == "source.hots"
    assert message.startswith("unknown key (allowed: type, incremental, write_mode, merge_keys, table, port")


def test_unknown_key_in_a_nested_model_lists_its_keys():
    [(key, message)] = problems_of(base(runtime={"retries": {"max_attempt": 2}}))
    assert key == "runtime.retries.max_attempt"
    assert message == "unknown key; did you mean 'max_attempts'? (allowed: max_attempts, initial_delay, max_delay)"


def test_wrong_value_type_names_the_key_and_value():
    [(key, message)] = problems_of(base(source={"type": "memory", "table": "a", "port": "many"}))
    assert key == "source.port"
    assert "valid integer" in message and "'many'" in message


def test_invalid_write_mode_value_lists_the_choices():
    [(key, message)] = problems_of(base(destination={"type": "memory", "table": "b", "write_mode": "upsert"}))
    assert key == "destination.write_mode"
    assert message.startswith("input should be 'append', 'overwrite' or 'merge'")


def test_write_mode_the_destination_does_not_support_lists_the_ones_it_does():
    [(key, message)] = problems_of(
        base(destination={"type": "memory", "table": "b", "write_mode": "merge", "merge_keys": ["id"]})
    )
    assert key == "destination.write_mode"
    assert message.endswith("memory supports write modes: append, overwrite")


def test_destination_that_cannot_write_is_refused():
    [(key, message)] = problems_of(base(destination={"type": "readonly", "table": "b"}))
    assert key == "destination.type"
    assert "cannot write" in message


def test_unsupported_incremental_strategy_is_refused():
    [(key, message)] = problems_of(
        base(source={"type": "memory", "table": "a", "incremental": {"strategy": "modified_time"}})
    )
    assert key == "source.incremental.strategy"
    assert "supports: cursor" in message


def test_incremental_belongs_to_the_source_and_write_mode_to_the_destination():
    problems = problems_of(
        base(
            source={"type": "memory", "table": "a", "write_mode": "overwrite"},
            destination={"type": "memory", "table": "b", "incremental": {"cursor_column": "x"}},
        )
    )
    assert ("source.write_mode", "belongs in the destination section, not the source") in problems
    assert ("destination.incremental", "belongs in the source section, not the destination") in problems


def test_top_level_unknown_key_and_missing_sections_are_all_reported_together():
    problems = problems_of({"name": "bad name!", "sauce": {}, "runtime": {"batch_size": 0}})
    keys = [key for key, _ in problems]
    assert keys == ["sauce", "name", "source", "destination", "runtime.batch_size"]


def test_problems_point_at_the_file_and_line_that_set_the_key():
    path = RECIPES / "bad/wrong_type.yaml"
    with pytest.raises(RecipeError) as info:
        from_yaml(path)
    assert info.value.context["problems"] == [
        (
            str(path),
            "source.port",
            "input should be a valid integer, unable to parse string as an integer (got 'not-a-number')",
        ),
        (
            str(path),
            "runtime.batch_size",
            "input should be a valid integer, unable to parse string as an integer (got 'lots')",
        ),
    ]
    assert info.value.context["lines"] == [2, 4]
    assert str(info.value).splitlines()[0] == f"{path}: source.port: " + info.value.context["problems"][0][2]


def test_model_dump_is_the_recipe_without_its_origin():
    dumped = Recipe.from_dict(base()).model_dump()
    assert dumped["source"]["table"] == "a"
    assert "resolved" not in dumped and "path" not in dumped


def test_a_bad_inherited_step_points_at_the_file_that_added_it(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "source: {type: memory, table: a}\ndestination: {type: memory, table: b}\n"
        "transform:\n  steps:\n    - {type: upper, columns: [a]}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nname: c\ntransform:\n  steps:\n    - {type: upper, columns: x}\n"
    )
    with pytest.raises(RecipeError) as info:
        from_yaml(tmp_path / "child.yaml")
    [(file, key, _message)] = info.value.context["problems"]
    assert (file, key) == (str(tmp_path / "child.yaml"), "transform.steps.1.columns")
    assert info.value.context["line"] == 5
