"""The recipe's schema: section through the CLI against real DuckDB files (docs/schema.md)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner
from dataloader.cli import cli


def _source(sql: str) -> None:
    con = duckdb.connect("src.duckdb")
    con.execute(f"CREATE OR REPLACE TABLE t AS {sql}")
    con.close()


def _recipe(path: Path, schema: dict | None = None) -> str:
    recipe = {
        "name": "people",
        "source": {"type": "duckdb", "database": "src.duckdb", "table": "t"},
        "destination": {"type": "duckdb", "database": "dst.duckdb", "table": "people"},
    }
    if schema is not None:
        recipe["schema"] = schema
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _dest(sql: str) -> list[tuple]:
    con = duckdb.connect("dst.duckdb", read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _columns() -> list[tuple]:
    return _dest("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'people' ORDER BY column_index")


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    """A destination holding two rows of (id INTEGER, name VARCHAR), loaded with a schema: section."""
    _source("SELECT * FROM (VALUES (1::INTEGER, 'a'), (2, 'b')) v(id, name)")
    assert _cli("run", _recipe(tmp_path / "r.yaml", {"evolution": {"mode": "auto"}}))[0] == 0
    return tmp_path


def test_manual_refuses_drift_prints_ddl_and_leaves_the_table(loaded: Path) -> None:
    _source("SELECT * FROM (VALUES (3::BIGINT, 'c', 'c@x')) v(id, name, email)")
    recipe = _recipe(loaded / "r.yaml", {"evolution": {"mode": "manual"}})
    code, out = _cli("check", recipe)
    assert code == 1
    assert "+ column 'email' (string) added: refuse" in out
    assert "~ column 'id' type int32 -> int64: refuse" in out
    assert 'ALTER TABLE people ADD COLUMN "email" VARCHAR;' in out
    assert 'ALTER TABLE people ALTER COLUMN "id" SET DATA TYPE BIGINT;' in out
    code, out = _cli("run", recipe)
    assert code == 1 and "nothing was written" in out
    assert _columns() == [("id", "INTEGER"), ("name", "VARCHAR")]
    assert _dest("SELECT count(*) FROM people") == [(2,)]


def test_auto_adds_the_column_and_widens_int_to_bigint(loaded: Path) -> None:
    _source("SELECT * FROM (VALUES (9000000000::BIGINT, 'c', 'c@x')) v(id, name, email)")
    assert _cli("run", _recipe(loaded / "r.yaml", {"evolution": {"mode": "auto"}}))[0] == 0
    assert _columns() == [("id", "BIGINT"), ("name", "VARCHAR"), ("email", "VARCHAR")]
    assert _dest("SELECT id, email FROM people ORDER BY id") == [(1, None), (2, None), (9000000000, "c@x")]
    code, out = _cli("schema", "history", str(loaded / "r.yaml"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("v1 ") and lines[0].endswith("initial")
    assert lines[1].startswith("v2 ") and lines[1].endswith("added email, type_changed id")
    code, out = _cli("schema", "diff", str(loaded / "r.yaml"), "1", "2")
    assert out.splitlines() == ["v1 -> v2: 2 change(s)", "  added email: string", "  type_changed id: int32 -> int64"]
    _source("SELECT 1::BIGINT AS id")  # the live source lost two columns
    code, out = _cli("schema", "diff", str(loaded / "r.yaml"))
    assert out.splitlines() == ["v2 -> live source: 2 change(s)", "  removed name: string", "  removed email: string"]
    versions = json.loads(_cli("schema", "history", str(loaded / "r.yaml"), "--format", "json")[1])
    assert [v["version"] for v in versions] == [1, 2] and versions[1]["columns"][0] == {
        "name": "id", "type": "int64", "nullable": True}


def test_auto_with_new_columns_switched_off_refuses(loaded: Path) -> None:
    _source("SELECT * FROM (VALUES (3::INTEGER, 'c', 'c@x')) v(id, name, email)")
    recipe = _recipe(loaded / "r.yaml", {"evolution": {"mode": "auto", "allow_new_columns": False}})
    code, out = _cli("run", recipe)
    assert code == 1 and "schema.evolution.allow_new_columns is false" in out
    assert _columns() == [("id", "INTEGER"), ("name", "VARCHAR")]


def test_int_to_text_is_refused_even_in_auto(loaded: Path) -> None:
    _source("SELECT * FROM (VALUES ('three', 'c')) v(id, name)")
    code, out = _cli("run", _recipe(loaded / "r.yaml", {"evolution": {"mode": "auto"}}))
    assert code == 1
    assert "column 'id' type int32 -> string: refuse (int32 and string have no common wider type" in out
    assert _dest("SELECT count(*) FROM people") == [(2,)]


def test_warn_loads_what_fits_the_table(loaded: Path) -> None:
    _source("SELECT * FROM (VALUES (3::BIGINT, 'c@x')) v(id, email)")  # name removed, email added, id wider
    code, out = _cli("run", _recipe(loaded / "r.yaml", {"evolution": {"mode": "warn"}}))
    assert code == 0, out
    assert _columns() == [("id", "INTEGER"), ("name", "VARCHAR")]
    assert _dest("SELECT id, name FROM people ORDER BY id") == [(1, "a"), (2, "b"), (3, None)]


def test_removed_column_refused_when_deletion_is_not_allowed(loaded: Path) -> None:
    _source("SELECT 3::INTEGER AS id")
    code, out = _cli("run", _recipe(loaded / "r.yaml", {"evolution": {"mode": "auto", "allow_column_deletion": False}}))
    assert code == 1 and "- column 'name' (string) removed: refuse" in out


def test_strict_contract_violated_by_one_row_names_column_and_row(tmp_path: Path) -> None:
    _source("SELECT * FROM (VALUES (1, 'a'), (2, NULL), (3, 'c')) v(id, name)")
    columns = [{"name": "id", "type": "int64", "primary_key": True}, {"name": "name", "type": "string", "nullable": False}]
    code, out = _cli("run", _recipe(tmp_path / "r.yaml", {"mode": "strict", "columns": columns}))
    assert code == 1
    assert "column 'name' is null in source row 2, but it is declared nullable: false" in out
    assert _dest("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'people'") == [(0,)]


def test_strict_contract_refuses_an_undeclared_column_lenient_passes_it(tmp_path: Path) -> None:
    _source("SELECT * FROM (VALUES (1, 'a', 'x')) v(id, name, extra)")
    columns = [{"name": "id", "type": "int64"}, {"name": "name", "type": "string"}]
    code, out = _cli("run", _recipe(tmp_path / "r.yaml", {"mode": "strict", "columns": columns}))
    assert code == 1 and "column 'extra' is not declared in schema.columns" in out
    code, out = _cli("run", _recipe(tmp_path / "r.yaml", {"mode": "lenient", "columns": columns}))
    assert code == 0, out
    assert _columns() == [("id", "BIGINT"), ("name", "VARCHAR"), ("extra", "VARCHAR")]


def test_declared_type_casts_and_names_the_row_that_does_not_fit(tmp_path: Path) -> None:
    _source("SELECT * FROM (VALUES ('1'), ('2'), ('two')) v(id)")
    code, out = _cli("run", _recipe(tmp_path / "r.yaml", {"columns": [{"name": "id", "type": "int32"}]}))
    assert code == 1 and "column 'id' in source row 3 holds 'two', which is not a int32" in out


def test_a_bad_schema_section_is_one_clear_error(tmp_path: Path) -> None:
    _source("SELECT 1 AS id")
    code, out = _cli("validate", _recipe(tmp_path / "r.yaml", {"columns": [{"name": "id", "type": "integr"}]}))
    assert code != 0 and "schema.columns.0.type" in out and "unknown type 'integr'" in out
    code, out = _cli("validate", _recipe(tmp_path / "r.yaml", {"evolution": {"mode": "sometimes"}}))
    assert code != 0 and "schema.evolution.mode" in out


def test_infer_prints_a_schema_block_without_losing_information(tmp_path: Path) -> None:
    _source(
        "SELECT * FROM (VALUES (1::INTEGER, '12', '99999999999999999999', 'x'), (NULL, '7', '1', NULL)) "
        "v(id, small, huge, label)"
    )
    code, out = _cli("schema", "infer", _recipe(tmp_path / "r.yaml"), "--sample", "10")
    assert code == 0, out
    assert yaml.safe_load(out) == {"schema": {"mode": "lenient", "columns": [
        {"name": "id", "type": "int32", "nullable": True},
        {"name": "small", "type": "int64", "nullable": False},
        {"name": "huge", "type": "decimal(38,0)", "nullable": False},
        {"name": "label", "type": "string", "nullable": True},
    ]}}
    code, out = _cli("schema", "infer", str(tmp_path / "r.yaml"), "--sample", "1", "--format", "json")
    assert [c["type"] for c in json.loads(out)["schema"]["columns"]] == ["int32", "int64", "decimal(38,0)", "string"]


def test_no_schema_section_keeps_todays_behaviour(loaded: Path) -> None:
    _source("SELECT * FROM (VALUES (3::BIGINT, 'c', 'c@x')) v(id, name, email)")
    assert _cli("run", _recipe(loaded / "r.yaml"))[0] == 0
    assert _columns() == [("id", "BIGINT"), ("name", "VARCHAR"), ("email", "VARCHAR")]
