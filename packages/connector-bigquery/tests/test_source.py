"""The source against the emulator: Storage Read API and REST, queries, estimates, cursors."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from conftest import Warehouse, people
from dataloader.state import State


def _read(warehouse: Warehouse, state: State | None = None, **keys: object) -> pa.Table:
    connector = warehouse.connector(role="source", **keys)
    connector.open()
    try:
        batches = [b.to_arrow() for b in connector.read_batches(state or State())]
    finally:
        connector.close()
    return pa.Table.from_batches(batches) if batches else pa.table({})


def test_table_reads_the_same_through_storage_and_rest(warehouse: Warehouse) -> None:
    warehouse.seed(people(list(range(1, 8))))
    storage = _read(warehouse, table="src").sort_by("id")
    rest = _read(warehouse, table="src", read_api="rest").sort_by("id")
    assert storage.column("id").to_pylist() == list(range(1, 8))
    assert storage.equals(rest.cast(storage.schema))


def test_query_source_with_parallel_streams(warehouse: Warehouse) -> None:
    warehouse.seed(people(list(range(1, 21))))
    connector = warehouse.connector(role="source", query=f"SELECT id * 10 AS x FROM `{warehouse.dataset}.src` WHERE id > 5")
    connector.context.parallelism = 3
    got = sorted(v for b in connector.read_batches(State()) for v in b.to_arrow().column("x").to_pylist())
    connector.close()
    assert got == [i * 10 for i in range(6, 21)]


def test_incremental_cursor_is_a_typed_query_parameter(warehouse: Warehouse) -> None:
    utc = dt.timezone.utc
    stamps = [dt.datetime(2026, 1, d, tzinfo=utc) for d in (1, 2, 3)]
    warehouse.seed(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "at": pa.array(stamps, pa.timestamp("us", tz="UTC"))}))
    state = State()
    state.set_cursor("at", stamps[1])
    got = _read(warehouse, state, table="src", incremental={"strategy": "cursor", "cursor_column": "at"})
    assert sorted(got.column("id").to_pylist()) == [2, 3]


def test_estimate_comes_from_table_metadata(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2, 3, 4]))
    connector = warehouse.connector(role="source", table="src")
    assert connector.estimate_total_records(State()) == 4
    assert connector.get_schema().names == ["id", "name"]
    connector.close()
    assert warehouse.connector(role="source", query="SELECT 1 AS x").estimate_total_records(State()) is None


def test_missing_table_is_named_in_the_error(warehouse: Warehouse) -> None:
    import pytest
    from dataloader.errors import ConnectorError

    connector = warehouse.connector(role="source", table="nope")
    with pytest.raises(ConnectorError, match=rf"table {warehouse.dataset}\.nope does not exist"):
        connector.test_connection()
