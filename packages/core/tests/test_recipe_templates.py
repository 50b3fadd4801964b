"""Templates in recipes: env_var, var, recipe.name, defaults, errors and secret tracking."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataloader.errors import RecipeError
from dataloader.recipe import Recipe, from_yaml
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

RECIPES = Path(__file__).parent / "recipes"
pytestmark = pytest.mark.usefixtures("memory_host")


def test_defaults_apply_when_nothing_is_set():
    recipe = from_yaml(RECIPES / "valid.yaml", env={})
    assert recipe.source.table == "customers"
    assert recipe.source.port == 5432  # rendered "5432", coerced by the model
    assert recipe.source.password == "hunter2"


def test_env_and_vars_override_defaults():
    recipe = from_yaml(
        RECIPES / "valid.yaml",
        vars={"source_table": "clients"},
        env={"DL_TEST_PORT": "6543", "DL_TEST_DB_PASSWORD": "123"},
    )
    assert recipe.source.table == "clients"
    assert recipe.source.port == 6543
    assert recipe.source.password == "123"  # stays a string: rendered values are never re-typed


def test_recipe_name_is_available_to_templates():
    recipe = from_yaml(RECIPES / "valid.yaml", env={})
    assert recipe.destination.table == "load_customers_out"


def test_env_var_of_a_secret_looking_name_is_recorded_for_masking():
    recipe = from_yaml(RECIPES / "valid.yaml", env={})
    assert recipe.secret_paths == {"source.password"}


def test_unset_env_var_without_default_names_file_key_and_variable():
    path = RECIPES / "bad/unset_env.yaml"
    with pytest.raises(RecipeError) as info:
        from_yaml(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: source.password: ")
    assert "DL_TEST_SURELY_UNSET_PASSWORD" in message
    assert info.value.context["key"] == "source.password"
    assert info.value.context["line"] == 5


def test_unknown_var_names_the_variable_and_how_to_pass_it():
    with pytest.raises(RecipeError, match=r"source.table: variable 'db' is not defined \(pass --var db=VALUE"):
        Recipe.from_dict(
            {
                "name": "t",
                "source": {"type": "memory", "table": "{{ var('db') }}"},
                "destination": {"type": "memory", "table": "b"},
            }
        )


def test_error_in_an_inherited_value_names_the_parent_file(tmp_path):
    (tmp_path / "base.yaml").write_text("source:\n  type: memory\n  table: \"{{ env_var('DL_TEST_NOPE') }}\"\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: c\ndestination: {type: memory, table: b}\n")
    with pytest.raises(RecipeError) as info:
        from_yaml(tmp_path / "child.yaml", env={})
    assert str(info.value).startswith(f"{tmp_path / 'base.yaml'}: source.table: ")


def test_templates_are_sandboxed():
    with pytest.raises(RecipeError, match="source.table"):
        Recipe.from_dict(
            {
                "name": "t",
                "source": {"type": "memory", "table": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
                "destination": {"type": "memory", "table": "b"},
            }
        )


def test_template_syntax_error_names_the_key():
    with pytest.raises(RecipeError, match=r"destination.table: invalid template"):
        Recipe.from_dict(
            {
                "name": "t",
                "source": {"type": "memory", "table": "a"},
                "destination": {"type": "memory", "table": "{{ oops"},
            }
        )


def test_strings_inside_lists_and_steps_are_rendered():
    recipe = Recipe.from_dict(
        {
            "name": "t",
            "source": {"type": "memory", "table": "a"},
            "transform": {"steps": [{"type": "upper", "columns": ["{{ var('col') }}", "fixed"]}]},
            "destination": {"type": "memory", "table": "b"},
        },
        vars={"col": "city"},
    )
    assert recipe.transform.steps[0].config.columns == ["city", "fixed"]


def test_raw_blocks_keep_literal_braces():
    recipe = Recipe.from_dict(
        {
            "name": "t",
            "source": {"type": "memory", "table": "{% raw %}{{ not_a_template }}{% endraw %}"},
            "destination": {"type": "memory", "table": "b"},
        }
    )
    assert recipe.source.table == "{{ not_a_template }}"


def test_strings_without_templates_are_left_alone():
    recipe = Recipe.from_dict(
        {
            "name": "t",
            "source": {"type": "memory", "table": "a {b} %c"},
            "destination": {"type": "memory", "table": "b"},
        }
    )
    assert recipe.source.table == "a {b} %c"
    assert recipe.secret_paths == set()
