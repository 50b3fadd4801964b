"""Reading: a table or a query, streamed as Arrow, with the cursor as a parameterised predicate."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pyarrow as pa
import pytest
from conftest import Warehouse, people
from dataloader.errors import ConnectorError
from dataloader.state import State
from dataloader_duckdb.config import DuckDBConfig
from pydantic import ValidationError


def events(ids: list[int], day: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "updated_at": pa.array([dt.datetime(2024, 1, day)] * len(ids), pa.timestamp("us")),
        }
    )


def read_ids(connector, state: State | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    connector.open()
    try:
        batches = list(connector.read_batches(state or State()))
    finally:
        connector.close()
    return sorted(i for batch in batches for i in batch.to_arrow().column("id").to_pylist())


def test_table_is_read_as_arrow_batches_of_the_run_batch_size(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2, 3, 4, 5]))
    connector = warehouse.source()
    connector.open()
    try:
        batches = list(connector.read_batches(State()))
    finally:
        connector.close()
    assert [batch.row_count for batch in batches] == [2, 2, 1]
    assert batches[0].schema == pa.schema([("id", pa.int64()), ("name", pa.string())])


def test_incremental_cursor_reads_rows_at_or_after_the_committed_value(warehouse: Warehouse) -> None:
    warehouse.seed(pa.concat_tables([events([1, 2], day=1), events([3, 4], day=2), events([5], day=3)]))
    incremental = {"strategy": "cursor", "cursor_column": "updated_at"}
    state = State()
    state.set_cursor("updated_at", dt.datetime(2024, 1, 2))
    assert read_ids(warehouse.source(incremental=incremental), state) == [3, 4, 5]  # >=, not >
    initial = {**incremental, "initial_value": "2024-01-03"}
    assert read_ids(warehouse.source(incremental=initial)) == [5]


def test_incremental_runs_load_each_row_once(warehouse: Warehouse) -> None:
    warehouse.seed(pa.concat_tables([events([1, 2], day=1), events([3], day=2)]))
    source = {
        "type": "duckdb",
        "database": warehouse.source_db,
        "table": "src",
        "incremental": {"strategy": "cursor", "cursor_column": "updated_at", "primary_key": ["id"]},
    }
    assert warehouse.run({"table": "t"}, source, name="inc").rows_written == 3
    warehouse.seed(pa.concat_tables([events([4], day=2), events([5], day=4)]), replace=False)
    second = warehouse.run({"table": "t"}, source, name="inc")
    assert (second.rows_read, second.rows_written) == (3, 2)  # the tie at day 2 is re-read, not re-loaded
    assert warehouse.query("SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,), (4,), (5,)]


def test_query_source_is_wrapped_so_the_cursor_applies_to_its_result(warehouse: Warehouse) -> None:
    warehouse.seed(pa.concat_tables([events([1, 2], day=1), events([3, 4], day=2)]))
    query = "SELECT id * 10 AS id, updated_at FROM src WHERE id <> 4;"
    state = State()
    state.set_cursor("updated_at", dt.datetime(2024, 1, 2))
    connector = warehouse.source(table=None, query=query, incremental={"cursor_column": "updated_at"})
    assert read_ids(connector, state) == [30]


def test_query_can_read_files_through_an_in_memory_database(warehouse: Warehouse, tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "people.csv"
    csv.write_text("id,name\n1,Ann\n2,Bo\n")
    source = {"type": "duckdb", "database": ":memory:", "query": f"SELECT * FROM read_csv('{csv}')"}
    warehouse.run({"table": "t"}, source)
    assert warehouse.query("SELECT * FROM t ORDER BY id") == [(1, "Ann"), (2, "Bo")]


def test_ordered_reads_sort_by_cursor_then_key(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"id": [3, 1, 2, 4], "day": [2, 2, 1, 1], "name": ["c", "a", "b", "d"]}))
    keyed = warehouse.source(incremental={"cursor_column": "day", "primary_key": ["id"]})
    keyed.context.extras["ordered"] = True
    unkeyed = warehouse.source()
    unkeyed.context.extras["ordered"] = True
    for connector, expected in ((keyed, [2, 4, 1, 3]), (unkeyed, [1, 2, 3, 4])):
        connector.open()
        try:
            ids = [i for b in connector.read_batches(State()) for i in b.to_arrow().column("id").to_pylist()]
        finally:
            connector.close()
        assert ids == expected


def test_estimate_counts_rows_past_the_cursor(warehouse: Warehouse) -> None:
    warehouse.seed(pa.concat_tables([events([1, 2], day=1), events([3], day=2)]))
    connector = warehouse.source(incremental={"cursor_column": "updated_at"})
    state = State()
    state.set_cursor("updated_at", dt.datetime(2024, 1, 2))
    connector.open()
    try:
        assert connector.estimate_total_records(State()) == 3
        assert connector.estimate_total_records(state) == 1
        assert connector.get_schema() == pa.schema([("id", pa.int64()), ("updated_at", pa.timestamp("us"))])
        connector.test_connection()
    finally:
        connector.close()


def test_source_connection_is_read_only(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    connector = warehouse.source()
    connector.open()
    try:
        connector.get_schema()
        assert connector._connection().execute("SELECT current_setting('access_mode')").fetchall() == [("read_only",)]
    finally:
        connector.close()


def test_missing_database_file_is_an_error_naming_it(warehouse: Warehouse) -> None:
    connector = warehouse.source()
    with pytest.raises(ConnectorError, match="source.duckdb does not exist"):
        connector.open()
    with pytest.raises(ConnectorError, match="source.duckdb does not exist"):
        connector.test_connection()


def test_missing_table_is_an_error_naming_it(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    connector = warehouse.source(table="sales.missing")
    with pytest.raises(ConnectorError, match="table sales.missing in DuckDB database .*source.duckdb"):
        read_ids(connector)
    with pytest.raises(ConnectorError, match="sales.missing"):
        connector.test_connection()


def test_missing_cursor_column_is_named(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    state = State()
    state.set_cursor("changed", 5)
    with pytest.raises(ConnectorError, match="column 'changed' \\(cursor or key\\) is not in table src.*columns: id, name"):
        read_ids(warehouse.source(incremental={"cursor_column": "changed"}), state)


def test_table_and_query_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="either 'table' or 'query'"):
        DuckDBConfig(type="duckdb", database="x.duckdb", table="t", query="SELECT 1")
    with pytest.raises(ValidationError, match="set 'table'"):
        DuckDBConfig(type="duckdb", database="x.duckdb")
    with pytest.raises(ValidationError, match="unterminated double quote"):
        DuckDBConfig(type="duckdb", database="x.duckdb", table='"open')
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        DuckDBConfig(type="duckdb", database="x.duckdb", table="t", tabel="t")


def test_destination_needs_a_table(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    with pytest.raises(ConnectorError, match="'query' key is for sources only"):
        warehouse.run({"query": "SELECT 1"})


def test_same_file_can_be_read_and_written_in_one_recipe(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2]), database=warehouse.target_db)
    source = {"type": "duckdb", "database": warehouse.target_db, "table": "src"}
    warehouse.run({"table": "copy"}, source)
    assert warehouse.query("SELECT count(*) FROM copy") == [(2,)]


def test_plugin_module_does_not_import_the_driver() -> None:
    code = "import sys, dataloader_duckdb.plugin; print('duckdb' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


def test_missing_driver_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataloader_duckdb.connector import DuckDBConnector

    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(ConnectorError, match=r"pip install --find-links WHEELS 'dataloader\[duckdb\]=="):
        DuckDBConnector(DuckDBConfig(type="duckdb", database="x.duckdb", table="t"))
