"""Loading recipe files: extends chains, merge rules, delete paths and file-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataloader.errors import RecipeError
from dataloader.recipe import Recipe, RecipeWarning, from_yaml
from dataloader.recipe.merge import deep_merge, delete_path
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

RECIPES = Path(__file__).parent / "recipes"
pytestmark = pytest.mark.usefixtures("memory_host")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_three_level_chain_resolves_parents_relative_to_each_file(monkeypatch):
    monkeypatch.chdir("/")  # relative to the files, never to the working directory
    recipe = from_yaml(RECIPES / "chain/team/jobs/child.yaml")
    assert recipe.name == "child"
    assert [p.name for p in recipe.files] == ["base.yaml", "mid.yaml", "child.yaml"]
    assert recipe.source.table == "customers"  # from the grandparent
    assert recipe.source.port == 2000  # the parent overrides the grandparent


def test_transform_steps_concatenate_parents_first():
    recipe = from_yaml(RECIPES / "chain/team/jobs/child.yaml")
    assert [step.config.columns for step in recipe.transform.steps] == [["name"], ["city"], ["email"]]
    assert [step.index for step in recipe.transform.steps] == [0, 1, 2]


def test_dicts_merge_key_by_key_at_every_depth():
    recipe = from_yaml(RECIPES / "chain/team/jobs/child.yaml")
    assert recipe.runtime.retries.max_attempts == 7  # mid
    assert recipe.runtime.retries.initial_delay == 1.0  # base, untouched by mid
    assert recipe.runtime.batch_size == 100
    assert recipe.runtime.parallelism == 2
    assert recipe.destination.write_mode == "overwrite"


def test_delete_removes_an_inherited_key_before_validation():
    recipe = from_yaml(RECIPES / "chain/team/jobs/child.yaml")
    assert "merge_keys" not in recipe.resolved["destination"]
    assert recipe.destination.merge_keys == []


def test_other_lists_are_replaced_by_the_childs_list():
    merged = deep_merge({"destination": {"merge_keys": ["a", "b"]}}, {"destination": {"merge_keys": ["c"]}})
    assert merged == {"destination": {"merge_keys": ["c"]}}


def test_scalars_override_and_inputs_are_not_modified():
    parent = {"source": {"port": 1, "host": "x"}}
    child = {"source": {"port": 2}}
    assert deep_merge(parent, child) == {"source": {"port": 2, "host": "x"}}
    assert parent == {"source": {"port": 1, "host": "x"}}


def test_a_child_scalar_replaces_a_parent_mapping():
    assert deep_merge({"state": {"backend": "local"}}, {"state": None}) == {"state": None}


def test_delete_path_can_index_a_list():
    tree = {"transform": {"steps": [{"type": "a"}, {"type": "b"}]}}
    assert delete_path(tree, "transform.steps.0")
    assert tree == {"transform": {"steps": [{"type": "b"}]}}
    assert not delete_path(tree, "transform.steps.5")


def test_missing_delete_path_is_a_warning_not_an_error():
    with pytest.warns(RecipeWarning, match="destination.merge_keys"):
        recipe = from_yaml(RECIPES / "bad/stale_delete.yaml")
    assert recipe.name == "stale_delete"
    assert any("destination.merge_keys" in note for note in recipe.warnings)


def test_extends_cycle_lists_the_cycle():
    with pytest.raises(RecipeError) as info:
        from_yaml(RECIPES / "cycle/a.yaml")
    assert "a.yaml -> b.yaml -> a.yaml" in str(info.value)
    assert info.value.context["key"] == "extends"


def test_a_recipe_extending_itself_is_a_cycle(tmp_path):
    write(tmp_path / "self.yaml", "extends: self.yaml\nname: s\n")
    with pytest.raises(RecipeError, match=r"self.yaml -> self.yaml"):
        from_yaml(tmp_path / "self.yaml")


def test_missing_parent_names_the_file_that_extends_it():
    with pytest.raises(RecipeError) as info:
        from_yaml(RECIPES / "bad/missing_parent.yaml")
    message = str(info.value)
    assert message.startswith(str(RECIPES / "bad/missing_parent.yaml"))
    assert "extends: parent recipe '../nowhere/parent.yaml' not found" in message


def test_missing_recipe_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        from_yaml(tmp_path / "nope.yaml")


def test_malformed_yaml_names_line_and_column():
    with pytest.raises(RecipeError) as info:
        from_yaml(RECIPES / "bad/malformed.yaml")
    assert "invalid YAML at line 5" in str(info.value)
    assert info.value.context["line"] == 5


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(RecipeError, match="must be a mapping"):
        from_yaml(write(tmp_path / "list.yaml", "- a\n- b\n"))


def test_yaml_loading_is_safe(tmp_path):
    path = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        from_yaml(path)


def test_from_dict_resolves_extends_relative_to_the_given_path(tmp_path):
    write(tmp_path / "conf/base.yaml", "source: {type: memory, table: a}\ndestination: {type: memory, table: b}\n")
    recipe = Recipe.from_dict({"extends": "base.yaml", "name": "api"}, path=tmp_path / "conf/virtual.yaml")
    assert recipe.source.table == "a"
    assert recipe.destination.table == "b"
