"""``dataloader validate`` for base recipes (fragments for ``extends:``) and without secrets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from dataloader.cli import cli
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "recipes"


@pytest.fixture
def invoke(memory_host, monkeypatch):  # noqa: F811
    monkeypatch.delenv("DL_TEST_UNSET_PASSWORD", raising=False)
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
# Shared source settings.
# dataloader: base
name: base
source:
  type: memory
runtime: {batch_size: 500}
"""


def test_base_recipe_is_checked_as_a_fragment(invoke, tmp_path):
    base = write(tmp_path / "base.yaml", BASE)
    result = invoke("validate", base)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{base}: ok (base recipe, checked as a fragment)"


def test_without_the_marker_the_same_file_is_an_incomplete_recipe(invoke, tmp_path):
    plain = write(tmp_path / "plain.yaml", BASE.replace("# dataloader: base\n", ""))
    result = invoke("validate", plain)
    assert result.exit_code == 1
    assert f"{plain}:3: source.table: required key is missing" in result.output
    assert "destination: required section is missing" in result.output


def test_base_recipe_still_fails_on_an_unknown_key_and_a_wrong_type(invoke, tmp_path):
    base = write(tmp_path / "base.yaml", BASE.replace("batch_size: 500", "batch_size: lots, paralelism: 2"))
    result = invoke("validate", base)
    assert result.exit_code == 1
    lines = sorted(result.output.strip().splitlines())
    assert len(lines) == 2, result.output
    assert lines[0].startswith(f"{base}:6: runtime.batch_size: ")
    assert lines[1].startswith(f"{base}:6: runtime.paralelism: unknown key; did you mean 'parallelism'? (allowed: batch_size,")


def test_a_child_of_a_base_recipe_is_a_full_recipe(invoke, tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", "name: child\nextends: base.yaml\ndestination: {type: memory, table: b}\n")
    result = invoke("validate", child)
    assert result.exit_code == 1
    # the missing table is reported where the base recipe opened the section
    assert f"{tmp_path / 'base.yaml'}:4: source.table: required key is missing" in result.output
    write(child, "name: child\nextends: base.yaml\nsource: {table: a}\ndestination: {type: memory, table: b}\n")
    assert invoke("validate", child).exit_code == 0


SECRET = """\
name: secret
source:
  type: memory
  table: "{{ env_var('DL_TEST_UNSET_TABLE') }}"
  password: "{{ env_var('DL_TEST_UNSET_PASSWORD') }}"
destination: {type: memory, table: b}
runtime: {batch_size: "{{ env_var('DL_TEST_UNSET_BATCH') }}"}
"""


def test_allow_missing_env_turns_unset_variables_into_placeholders(invoke, tmp_path):
    recipe = write(tmp_path / "secret.yaml", SECRET)
    strict = invoke("validate", recipe)
    assert strict.exit_code == 1
    assert "environment variable 'DL_TEST_UNSET_TABLE' is not set" in strict.output
    relaxed = invoke("validate", "--allow-missing-env", recipe)
    assert relaxed.exit_code == 0, relaxed.output
    assert "placeholders for unset DL_TEST_UNSET_BATCH, DL_TEST_UNSET_PASSWORD, DL_TEST_UNSET_TABLE" in relaxed.output


def test_allow_missing_env_still_runs_the_type_checks(invoke, tmp_path):
    recipe = write(tmp_path / "secret.yaml", SECRET.replace("destination: {type: memory, table: b}", "destination: {type: memory, table: b, port: x}"))
    result = invoke("validate", "--allow-missing-env", recipe)
    assert result.exit_code == 1
    assert "destination.port: " in result.output and "DL_TEST_UNSET" not in result.output


def test_an_unused_var_is_a_warning(invoke, tmp_path):
    recipe = write(tmp_path / "r.yaml", "name: r\nsource: {type: memory, table: \"{{ var('t') }}\"}\ndestination: {type: memory, table: b}\n")
    result = invoke("validate", recipe, "--var", "t=a", "--var", "tabel=b")
    assert result.exit_code == 0
    assert "warning: --var tabel is not used: no recipe given reads var('tabel')" in result.output
    assert "--var t " not in result.output


def test_the_example_base_recipe_passes_and_its_child_validates_without_secrets(tmp_path, monkeypatch):
    pytest.importorskip("dataloader_postgres")
    pytest.importorskip("dataloader_duckdb")
    from dataloader.plugins import reset

    reset()
    for name in ("base_recipe.yaml", "postgres_to_duckdb.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    monkeypatch.delenv("DATALOADER_PG_PASSWORD", raising=False)
    result = CliRunner().invoke(cli, ["validate", "--allow-missing-env", str(tmp_path / "base_recipe.yaml"), str(tmp_path / "postgres_to_duckdb.yaml")])
    reset()
    assert result.exit_code == 0, result.output
    assert "base_recipe.yaml: ok (base recipe, checked as a fragment)" in result.output
