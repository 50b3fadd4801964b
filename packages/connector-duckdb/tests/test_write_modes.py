"""Write modes through real recipe runs: DuckDB file to DuckDB file, two rows per batch."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from conftest import Warehouse, people
from dataloader.errors import DataLoaderError, RecipeError


def test_append_twice_doubles(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2, 3]))
    warehouse.run({"table": "t"})
    warehouse.run({"table": "t"})
    assert warehouse.query("SELECT id, count(*) FROM t GROUP BY id ORDER BY id") == [(1, 2), (2, 2), (3, 2)]


def test_overwrite_twice_keeps_one_copy(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2, 3]))
    warehouse.run({"table": "t", "write_mode": "overwrite"})
    warehouse.seed(people([3, 4]))
    warehouse.run({"table": "t", "write_mode": "overwrite"})
    assert warehouse.query("SELECT id FROM t ORDER BY id") == [(3,), (4,)]


def test_overwrite_with_an_empty_source_empties_the_table(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2]))
    warehouse.run({"table": "t", "write_mode": "overwrite"})
    warehouse.seed(people([]))
    result = warehouse.run({"table": "t", "write_mode": "overwrite"})
    assert result.rows_written == 0
    assert warehouse.query("SELECT count(*) FROM t") == [(0,)]


def test_merge_upserts_on_the_merge_keys(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2, 3]))
    warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["id"]})
    warehouse.seed(people([2, 4], ["two", "four"]))
    warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["id"]})
    assert warehouse.query("SELECT id, name FROM t ORDER BY id") == [
        (1, "person 1"),
        (2, "two"),
        (3, "person 3"),
        (4, "four"),
    ]


def test_merge_last_row_wins_for_repeated_key(warehouse: Warehouse) -> None:
    # Five rows for key 7 spread over three batches of two: the last one in source order wins.
    rows = people([7, 1, 7, 7, 2, 7, 7], ["a", "one", "b", "c", "two", "d", "last"])
    warehouse.seed(rows)
    warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["id"]})
    assert warehouse.query("SELECT id, name FROM t ORDER BY id") == [(1, "one"), (2, "two"), (7, "last")]


def test_merge_on_a_composite_key_with_nulls(warehouse: Warehouse) -> None:
    first = pa.table({"k1": [1, 1, None], "k2": ["a", "b", "x"], "v": [10, 20, 30]})
    warehouse.seed(first)
    warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["k1", "k2"]})
    warehouse.seed(pa.table({"k1": [1, None], "k2": ["b", "x"], "v": [21, 31]}))
    warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["k1", "k2"]})
    assert warehouse.query("SELECT k1, k2, v FROM t ORDER BY v") == [(1, "a", 10), (1, "b", 21), (None, "x", 31)]


def test_merge_without_merge_keys_is_refused(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    with pytest.raises(RecipeError, match="merge_keys"):
        warehouse.run({"table": "t", "write_mode": "merge"})
    connector = warehouse.destination("t", write_mode="merge")
    connector.open()
    try:
        with pytest.raises(DataLoaderError, match="merge_keys"):
            connector.begin(people([1]).schema, "merge", _state())
    finally:
        connector.close()


def test_merge_key_missing_from_the_rows_is_named(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    with pytest.raises(DataLoaderError, match="merge key column\\(s\\) customer_id"):
        warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["customer_id"]})


def test_results_count_rows_and_commit_the_state_with_them(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2, 3]))
    result = warehouse.run({"table": "t"}, name="people_load")
    assert (result.status, result.rows_read, result.rows_written) == ("success", 3, 3)
    connector = warehouse.destination("t")
    connector.open()
    try:
        stored = connector.load_committed_state("people_load")
    finally:
        connector.close()
    assert stored["run_id"] == result.run_id
    assert stored["state"]["metadata"]["rows_written"] == 3
    assert warehouse.destination("t").load_committed_state("never_ran") is None


def test_committed_state_of_a_database_that_does_not_exist_is_none(warehouse: Warehouse) -> None:
    assert warehouse.destination("t").load_committed_state("anything") is None


def _state():  # type: ignore[no-untyped-def]
    from dataloader.state import State

    return State()


def test_crash_between_commit_and_state_save_loads_nothing_twice(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"id": [1, 2, 3], "version": [1, 1, 1]}))
    source = {
        "type": "duckdb",
        "database": warehouse.source_db,
        "table": "src",
        "incremental": {"strategy": "cursor", "cursor_column": "version", "primary_key": ["id"]},
    }
    first = warehouse.run({"table": "t"}, source, name="exactly_once")
    # As if the process died right after DuckDB committed: the local state still shows the run as
    # started and knows nothing of what it loaded.
    state_file = warehouse.root / "state" / "exactly_once.json"
    state_file.write_text(json.dumps({"checkpoints": {"run_id": first.run_id}}))
    second = warehouse.run({"table": "t"}, source, name="exactly_once")
    assert second.rows_written == 0
    assert warehouse.query("SELECT count(*) FROM t") == [(3,)]
    assert json.loads(state_file.read_text())["cursor_values"] == {"version": 1}


def test_checkpointed_run_commits_every_n_batches(warehouse: Warehouse) -> None:
    warehouse.seed(people(list(range(1, 8))))
    recipe_destination = {"table": "t", "write_mode": "merge", "merge_keys": ["id"]}
    source = {"type": "duckdb", "database": warehouse.source_db, "table": "src"}
    result = warehouse.run(recipe_destination, source, name="checkpointed", checkpoint_every=2)
    assert result.rows_written == 7
    assert warehouse.query("SELECT count(*), count(DISTINCT id) FROM t") == [(7, 7)]
    assert warehouse.query("SELECT run_id FROM _dataloader_state") == [(result.run_id,)]


def test_destination_folder_must_exist(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    with pytest.raises(DataLoaderError, match="the folder .*no_such_dir for DuckDB database .* does not exist"):
        warehouse.run({"table": "t", "database": str(warehouse.root / "no_such_dir" / "x.duckdb")})
