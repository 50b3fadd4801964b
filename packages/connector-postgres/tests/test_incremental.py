"""Incremental cursor reads through the real engine: each row exactly once across runs."""

from __future__ import annotations

import pytest
from dataloader import run_recipe
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend

T1, T2, T3 = "2024-05-01 10:00:00.000001+00", "2024-05-01 10:00:00.000002+00", "2024-05-02 00:00:00+00"


def _insert(pg, table: str, rows: list[tuple[int, str]]) -> None:
    with pg.cursor() as cur:
        for row_id, at in rows:
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", (row_id, at, f"payload {row_id}"))


@pytest.mark.parametrize("primary_key", [["id"], None], ids=["by-primary-key", "by-whole-row"])
def test_ties_at_the_high_water_value_are_loaded_exactly_once(pg, section, table_name, tmp_path, primary_key):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, updated_at timestamptz, payload text)")
    _insert(pg, table_name, [(1, T1), (2, T1), (3, T1), (4, T2), (5, T2)])
    incremental = {"strategy": "cursor", "cursor_column": "updated_at"}
    if primary_key:
        incremental["primary_key"] = primary_key
    recipe = Recipe.from_dict(
        {
            "name": "incremental",
            "source": section(table=table_name, incremental=incremental),
            "destination": section(table=f"{table_name}_out", write_mode="append"),
            "runtime": {"batch_size": 2},
        }
    )
    backend = LocalStateBackend(tmp_path / "state")

    first = run_recipe(recipe, backend, history=False)
    # Committed after the first run read T2: one more row at T2, and a newer one.
    _insert(pg, table_name, [(6, T2), (7, T3)])
    second = run_recipe(recipe, backend, history=False)
    third = run_recipe(recipe, backend, history=False)

    assert (first.rows_written, second.rows_written, third.rows_written) == (5, 2, 0)
    with pg.cursor() as cur:
        cur.execute(f"SELECT id, count(*) FROM {table_name}_out GROUP BY id ORDER BY id")
        assert cur.fetchall() == [(i, 1) for i in range(1, 8)]
        cur.execute(
            "SELECT state::jsonb -> 'state' -> 'cursor_values' ->> 'updated_at' FROM _dataloader_state "
            "WHERE recipe_name = 'incremental'"
        )
        assert cur.fetchone()[0].startswith("2024-05-02T00:00:00")
    assert backend.load("incremental")["cursor_values"]["updated_at"].startswith("2024-05-02T00:00:00")
    with pg.cursor() as cur:
        cur.execute("DELETE FROM _dataloader_state WHERE recipe_name = 'incremental'")
