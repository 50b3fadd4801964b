"""Reading a hostile recipe in-process: the project root, file kinds and sizes, alias bombs,
duplicate keys and template limits (tests/reliability/test_untrusted_recipes.py drives the CLI)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dataloader.errors import RecipeError
from dataloader.recipe import from_yaml
from dataloader.recipe.loader import MAX_RECIPE_BYTES, parse_yaml, project_root_for


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_root_is_the_git_repository_holding_the_recipe(tmp_path, monkeypatch):
    monkeypatch.delenv("DATALOADER_PROJECT_ROOT", raising=False)
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    recipe = _write(tmp_path / "repo" / "a" / "b" / "r.yaml", "name: r\n")
    assert project_root_for(recipe) == (tmp_path / "repo").resolve()
    assert project_root_for(recipe, tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("DATALOADER_PROJECT_ROOT", str(tmp_path / "repo" / "a"))
    assert project_root_for(recipe) == (tmp_path / "repo" / "a").resolve()


def test_without_a_repository_the_root_is_the_recipes_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DATALOADER_PROJECT_ROOT", raising=False)
    recipe = _write(tmp_path / "here" / "r.yaml", "name: r\nextends: ../base.yaml\n")
    _write(tmp_path / "base.yaml", "description: parent\n")
    with pytest.raises(RecipeError, match=r"extends: parent recipe '../base.yaml' is outside the project root"):
        from_yaml(recipe)
    with pytest.raises(RecipeError) as info:  # with a wider root it gets as far as validation
        from_yaml(recipe, project_root=tmp_path)
    assert "outside the project root" not in str(info.value)


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path):
    recipe = _write(tmp_path / "big.yaml", "name: big\n" + "#" * MAX_RECIPE_BYTES)
    with pytest.raises(RecipeError, match="recipe file is larger than 1024 KiB"):
        from_yaml(recipe)


def test_alias_bomb_is_refused_by_counting_nodes():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    with pytest.raises(RecipeError, match="expand to more than 10,000 nodes"):
        parse_yaml("\n".join(lines), "bomb.yaml")
    assert time.monotonic() - started < 1


def test_duplicate_keys_name_both_lines_even_in_flow_mappings():
    with pytest.raises(RecipeError, match=r"source.type: duplicate key at lines 2 and 2"):
        parse_yaml("name: x\nsource: {type: a, type: b}\n", "f.yaml")
    with pytest.raises(RecipeError, match=r"steps.0.a: duplicate key at lines 2 and 4"):
        parse_yaml("steps:\n  - a: 1\n    b: 0\n    a: 2\n", "f.yaml")


def test_merge_keys_are_not_duplicates():
    data, _ = parse_yaml("base: &b {x: 1}\nsource:\n  <<: *b\n  y: 2\n", "f.yaml")
    assert data["source"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    "template",
    ["{{ range(10**9) | list }}", "{{ 'a' * 2**31 }}", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"],
)
def test_template_abuse_is_a_recipe_error_naming_file_and_key(tmp_path, template):
    recipe = _write(tmp_path / "t.yaml", f'name: t\ndescription: "{template}"\n')
    started = time.monotonic()
    with pytest.raises(RecipeError) as info:
        from_yaml(recipe)
    assert time.monotonic() - started < 2
    assert str(info.value).startswith(f"{recipe}: description: template stopped: ")
