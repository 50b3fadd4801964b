"""Every statement names the catalog: a database file may be called like any schema in it.

DuckDB names a database's catalog after its file, so in ``dw.duckdb`` the name ``dw.customers``
could be catalog ``dw`` (schema ``main``) or schema ``dw``; DuckDB refuses the two-part name as
ambiguous. The connector spells out ``"dw"."dw"."customers"`` everywhere: reads, writes, the
staging table, the commit record, the schema checks and the catalog queries.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from conftest import run_cli, write_recipe


def _seed(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(sql)
    finally:
        con.close()


def _rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("stem", ["dw", "main"])  # DuckDB calls main.duckdb's catalog main_db
def test_every_write_mode_into_a_schema_named_like_the_file(tmp_path: Path, stem: str) -> None:
    _seed(tmp_path / "src.duckdb", "CREATE TABLE src AS SELECT range AS id, 'v' || range AS name FROM range(5)")
    target = tmp_path / f"{stem}.duckdb"
    _seed(target, f"CREATE SCHEMA IF NOT EXISTS {stem}")
    catalog = _rows(target, "SELECT current_database()")[0][0]
    _seed(target, f"""CREATE TABLE "{catalog}"."{stem}".merged AS SELECT range + 3 AS id, 'old' AS name FROM range(4);
                   CREATE TABLE "{catalog}"."{stem}".replaced AS SELECT 99 AS id, 'old' AS name""")
    recipes = []
    for name, table, mode in (
        ("append_1", "appended", "append"),
        ("append_2", "appended", "append"),
        ("replace", "replaced", "overwrite"),
        ("merge", "merged", "merge, merge_keys: [id]"),
    ):
        recipes.append(
            write_recipe(
                tmp_path,
                name,
                f"""
name: {name}
source: {{type: duckdb, database: src.duckdb, table: src}}
destination: {{type: duckdb, database: {stem}.duckdb, table: {stem}.{table}, write_mode: {mode}}}
""",
            )
        )
    done = run_cli("run", *map(str, recipes), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    def table(name: str) -> list[tuple]:
        return _rows(target, f'SELECT id, name FROM "{catalog}"."{stem}".{name} ORDER BY ALL')

    ids = [(i, f"v{i}") for i in range(5)]
    assert table("appended") == sorted(ids + ids)
    assert table("replaced") == ids
    assert table("merged") == ids + [(5, "old"), (6, "old")]
    # The rows are in schema ``stem``; the commit record is in the file's main schema, one per recipe.
    assert _rows(target, f'SELECT recipe_name FROM "{catalog}".main._dataloader_state ORDER BY 1') == [
        ("append_1",), ("append_2",), ("merge",), ("replace",)
    ]
    # ``check`` reads the table's columns through the catalog as well.
    check = run_cli("check", str(recipes[-1]), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_new_column_and_a_widened_type_in_a_schema_named_like_the_file(tmp_path: Path) -> None:
    _seed(tmp_path / "dw.duckdb", "CREATE SCHEMA dw.dw; CREATE TABLE dw.dw.customers (id INTEGER, name VARCHAR)")
    _seed(tmp_path / "src.duckdb", "CREATE TABLE src AS SELECT range::BIGINT AS id, 'x' AS name, true AS vip FROM range(3)")
    recipe = write_recipe(
        tmp_path,
        "grow",
        """
name: grow
source: {type: duckdb, database: src.duckdb, table: src}
destination: {type: duckdb, database: dw.duckdb, table: dw.customers, write_mode: merge, merge_keys: [id]}
""",
    )
    done = run_cli("run", str(recipe), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _rows(tmp_path / "dw.duckdb", "SELECT column_name, data_type FROM duckdb_columns() "
                 "WHERE table_name = 'customers' ORDER BY column_index") == [
        ("id", "BIGINT"), ("name", "VARCHAR"), ("vip", "BOOLEAN")
    ]


def test_incremental_read_from_a_schema_named_like_the_file(tmp_path: Path) -> None:
    _seed(
        tmp_path / "dw.duckdb",
        "CREATE SCHEMA dw.dw; CREATE TABLE dw.dw.customers AS SELECT range AS id, range % 3 AS updated FROM range(9)",
    )
    recipe = write_recipe(
        tmp_path,
        "read",
        """
name: read
source:
  type: duckdb
  database: dw.duckdb
  table: dw.customers
  incremental: {strategy: cursor, cursor_column: updated, primary_key: [id]}
destination: {type: duckdb, database: out.duckdb, table: dw.copy}
runtime: {batch_size: 2, checkpoint_every: 4}
""",
    )
    first = run_cli("run", str(recipe), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    _seed(tmp_path / "dw.duckdb", "INSERT INTO dw.dw.customers VALUES (100, 2), (101, 5)")
    second = run_cli("run", str(recipe), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _rows(tmp_path / "out.duckdb", "SELECT count(*), count(DISTINCT id), max(id) FROM dw.copy") == [(11, 11, 101)]
