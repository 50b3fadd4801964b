"""The destination table follows the source: created, grown and widened, never silently retyped."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest
from conftest import Warehouse, people
from dataloader.errors import DataLoaderError


def test_table_and_schema_are_created_from_the_arrow_schema(warehouse: Warehouse) -> None:
    table = pa.table(
        {
            "id": pa.array([1], pa.int32()),
            "amount": pa.array([decimal.Decimal("12.50")], pa.decimal128(10, 2)),
            "seen": pa.array([dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)], pa.timestamp("us", tz="UTC")),
            "tags": pa.array([["a", "b"]], pa.list_(pa.string())),
        }
    )
    warehouse.seed(table)
    warehouse.run({"table": "sales.orders"})
    assert warehouse.query("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'") == [
        ("id", "INTEGER"),
        ("amount", "DECIMAL(10,2)"),
        ("seen", "TIMESTAMP WITH TIME ZONE"),
        ("tags", "VARCHAR[]"),
    ]


def test_new_source_column_is_added_as_nullable(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2]))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": [3], "name": ["three"], "email": ["c@example.org"]}))
    warehouse.run({"table": "t"})
    assert warehouse.query("SELECT id, name, email FROM t ORDER BY id") == [
        (1, "person 1", None),
        (2, "person 2", None),
        (3, "three", "c@example.org"),
    ]
    assert warehouse.query("SELECT is_nullable FROM duckdb_columns() WHERE column_name = 'email'") == [(True,)]


def test_column_missing_from_the_source_is_left_null(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": [2]}))
    warehouse.run({"table": "t"})
    assert warehouse.query("SELECT id, name FROM t ORDER BY id") == [(1, "person 1"), (2, None)]


def test_incompatible_type_change_is_refused_naming_the_column(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"id": [1], "code": ["A1"]}))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": [2], "code": [42]}))
    with pytest.raises(DataLoaderError, match="column 'code' of t is VARCHAR but the rows being loaded have BIGINT"):
        warehouse.run({"table": "t"})
    assert warehouse.query("SELECT id, code FROM t") == [(1, "A1")]


def test_check_lists_every_column_that_would_be_refused(warehouse: Warehouse) -> None:
    from dataloader.engine import preflight
    from dataloader.recipe import Recipe

    warehouse.seed(pa.table({"id": [1], "code": ["A1"], "day": [dt.date(2024, 1, 1)]}))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": ["one"], "code": [42], "day": [dt.date(2024, 1, 2)]}))
    recipe = Recipe.from_dict(
        {
            "name": "check",
            "source": {"type": "duckdb", "database": warehouse.source_db, "table": "src"},
            "destination": {"type": "duckdb", "database": warehouse.target_db, "table": "t"},
        }
    )
    problems = preflight(recipe, warehouse.host)
    assert len(problems) == 2
    assert "column 'id' of t is BIGINT but the rows being loaded have VARCHAR" in problems[0]
    assert "column 'code' of t is VARCHAR but the rows being loaded have BIGINT" in problems[1]


def test_wider_integer_widens_the_column(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"id": pa.array([1], pa.int32())}))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": pa.array([2**40], pa.int64())}))
    warehouse.run({"table": "t"})
    assert warehouse.query("SELECT data_type FROM duckdb_columns() WHERE table_name = 't'") == [("BIGINT",)]
    assert warehouse.query("SELECT id FROM t ORDER BY id") == [(1,), (2**40,)]


def test_narrower_integer_fits_the_existing_column(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"id": pa.array([2**40], pa.int64())}))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": pa.array([1], pa.int16())}))
    warehouse.run({"table": "t"})
    assert warehouse.query("SELECT data_type FROM duckdb_columns() WHERE table_name = 't'") == [("BIGINT",)]


def test_column_names_match_the_table_case_insensitively(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"ID": [1], "Name": ["a"]}))
    warehouse.run({"table": "t"})
    warehouse.seed(pa.table({"id": [2], "name": ["b"]}))
    warehouse.run({"table": "t", "write_mode": "merge", "merge_keys": ["Id"]})
    assert warehouse.query("SELECT * FROM t ORDER BY 1") == [(1, "a"), (2, "b")]


def test_a_column_null_in_the_first_batch_takes_the_type_of_later_values(warehouse: Warehouse) -> None:
    connector = warehouse.destination("t")
    connector.open()
    try:
        first = pa.record_batch({"id": [1], "note": pa.nulls(1)})
        second = pa.record_batch({"id": [2], "note": pa.nulls(1), "extra": pa.nulls(1)})
        later = pa.record_batch({"id": [3], "note": ["filled"], "extra": [dt.date(2024, 1, 1)]})
        connector.begin(first.schema, "append", _state())
        for batch in (first, second, later):
            connector.write_batch(_batch(batch), _state())
        connector.commit(_state())
    finally:
        connector.close()
    assert warehouse.query("SELECT id, note, extra FROM t ORDER BY id") == [
        (1, None, None),
        (2, None, None),
        (3, "filled", dt.date(2024, 1, 1)),
    ]
    assert warehouse.query("SELECT data_type FROM duckdb_columns() WHERE table_name = 't'") == [
        ("BIGINT",),
        ("VARCHAR",),
        ("DATE",),
    ]


def test_a_column_new_in_a_later_batch_of_a_merge_is_staged(warehouse: Warehouse) -> None:
    connector = warehouse.destination("t", write_mode="merge", merge_keys=["id"])
    connector.open()
    try:
        first = pa.record_batch({"id": [1, 2], "v": ["a", "b"]})
        later = pa.record_batch({"id": [2], "v": ["b2"], "extra": [True]})
        connector.begin(first.schema, "merge", _state())
        for batch in (first, later):
            connector.write_batch(_batch(batch), _state())
        connector.commit(_state())
    finally:
        connector.close()
    assert warehouse.query("SELECT id, v, extra FROM t ORDER BY id") == [(1, "a", None), (2, "b2", True)]


def test_an_all_null_column_loads_into_a_typed_column(warehouse: Warehouse) -> None:
    warehouse.seed(pa.table({"id": [1], "day": [dt.date(2024, 1, 1)]}))
    warehouse.run({"table": "t"})
    connector = warehouse.destination("t")
    connector.open()
    try:
        batch = pa.record_batch({"id": [2], "day": pa.nulls(1)})
        connector.begin(batch.schema, "append", _state())
        connector.write_batch(_batch(batch), _state())
        connector.commit(_state())
    finally:
        connector.close()
    assert warehouse.query("SELECT id, day FROM t ORDER BY id") == [(1, dt.date(2024, 1, 1)), (2, None)]


def test_a_column_that_is_null_in_every_row_is_created_as_text(warehouse: Warehouse) -> None:
    batch = pa.record_batch({"id": [1, 2], "nothing": pa.nulls(2)})
    connector = warehouse.destination("t")
    connector.open()
    try:
        connector.begin(batch.schema, "append", _state())
        connector.write_batch(_batch(batch), _state())
        connector.commit(_state())
    finally:
        connector.close()
    assert warehouse.query("SELECT data_type FROM duckdb_columns() WHERE column_name = 'nothing'") == [("VARCHAR",)]


def _state():  # type: ignore[no-untyped-def]
    from dataloader.state import State

    return State()


def _batch(record_batch: pa.RecordBatch):  # type: ignore[no-untyped-def]
    from dataloader.batch import Batch

    return Batch.from_arrow(record_batch)
