"""The destination against the emulator: atomic commits, the commit record, merge, created tables."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa
import pytest
from conftest import Warehouse, people
from dataloader.batch import Batch
from dataloader.errors import ConnectorError
from dataloader.state import State
from dataloader.testing import MEMORY_TABLES
from dataloader_bigquery import types


def _memory_source(table: pa.Table, key: str = "rows") -> dict[str, object]:
    MEMORY_TABLES[key] = table
    return {"type": "contract_memory", "table": key}


def _stages(warehouse: Warehouse) -> list[str]:
    return [t.table_id for t in warehouse.bq.list_tables(warehouse.dataset) if t.table_id.startswith("_dataloader_stage_")]


def test_abort_after_writes_leaves_target_and_dataset_unchanged(warehouse: Warehouse) -> None:
    warehouse.run(_memory_source(people([1, 2])), warehouse.keys(table="t"))
    connector = warehouse.connector(table="t")
    connector.open()
    connector.begin(people([9]).schema, "overwrite", State())
    connector.write_batch(Batch.from_arrow(people([7, 8, 9]).to_batches()[0]), State())
    connector.abort()
    connector.close()
    assert warehouse.rows("SELECT id FROM `{ds}.t` ORDER BY id") == [(1,), (2,)]
    assert _stages(warehouse) == []


def test_failed_transaction_rolls_back_rows_and_commit_record(warehouse: Warehouse) -> None:
    warehouse.run(_memory_source(people([1, 2])), warehouse.keys(table="t"), name="r")
    before = warehouse.rows("SELECT run_id, state FROM `{ds}._dataloader_state`")
    # The rows load into the staging table, the DELETE of the overwrite runs, then the INSERT
    # fails (name is STRING in the rows, INT64 in the target): BigQuery rolls back all of it.
    warehouse.bq.query_and_wait(f"CREATE TABLE `{warehouse.dataset}.u` (id INT64, name INT64)")
    warehouse.bq.query_and_wait(f"INSERT INTO `{warehouse.dataset}.u` (id, name) VALUES (1, 100)")
    with pytest.raises(ConnectorError, match="committing"):
        warehouse.run(_memory_source(people([5, 6])), {**warehouse.keys(table="u"), "write_mode": "overwrite"}, name="r")
    assert warehouse.rows("SELECT id, name FROM `{ds}.u`") == [(1, 100)]
    assert warehouse.rows("SELECT run_id, state FROM `{ds}._dataloader_state`") == before
    assert _stages(warehouse) == []


def test_commit_record_is_written_with_the_rows_and_read_back(warehouse: Warehouse) -> None:
    source = {**_memory_source(people([1, 2, 3], updated=[5, 6, 7])),
              "incremental": {"strategy": "cursor", "cursor_column": "updated"}}
    result = warehouse.run(source, warehouse.keys(table="t"), name="with_record")
    connector = warehouse.connector(table="t")
    record = connector.load_committed_state("with_record")
    connector.close()
    assert record is not None and record["run_id"] == result.run_id
    assert record["published"]["rows"] == 3
    assert record["state"]["cursor_values"]
    assert warehouse.connector(table="t").load_committed_state("other_recipe") is None


def test_merge_on_two_keys_last_row_wins_and_keeps_other_rows(warehouse: Warehouse) -> None:
    def rows(a: list[int], b: list[str], v: list[str]) -> pa.Table:
        return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b), "v": pa.array(v)})

    destination = {**warehouse.keys(table="m"), "write_mode": "merge", "merge_keys": ["a", "b"]}
    warehouse.run(_memory_source(rows([1, 1, 2], ["x", "y", "x"], ["old", "old", "old"])), destination)
    warehouse.run(_memory_source(rows([1, 2, 1, 3], ["y", "x", "y", "z"], ["first", "new", "last", "new"])), destination)
    assert warehouse.rows("SELECT a, b, v FROM `{ds}.m` ORDER BY a, b") == [
        (1, "x", "old"), (1, "y", "last"), (2, "x", "new"), (3, "z", "new")
    ]


def test_values_at_the_limits_of_each_type_round_trip(warehouse: Warehouse) -> None:
    utc = dt.timezone.utc
    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "i": pa.array([-(2**63), 2**63 - 1], pa.int64()),
        "n": pa.array([decimal.Decimal("99999999999999999999999999999.999999999"), decimal.Decimal("-0.000000001")],
                      pa.decimal128(38, 9)),
        "ts": pa.array([dt.datetime(1, 1, 1, tzinfo=utc), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc)],
                       pa.timestamp("us", tz="UTC")),
        "d": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31)], pa.date32()),
        "s": pa.array(["", "x" * 10_000]),
    })
    warehouse.run(_memory_source(table), warehouse.keys(table="limits"))
    got = warehouse.arrow("SELECT * FROM `{ds}.limits` ORDER BY id")
    for name in table.column_names:
        assert got.column(name).to_pylist() == table.column(name).to_pylist(), name


def test_created_table_gets_partitioning_and_clustering(warehouse: Warehouse) -> None:
    table = pa.table({"id": pa.array([1], pa.int64()), "day": pa.array([dt.date(2026, 12, 1)], pa.date32())})
    destination = {**warehouse.keys(table="parted"), "partition_by": {"field": "day", "type": "DAY"}, "cluster_by": ["id"]}
    warehouse.run(_memory_source(table), destination)
    created = warehouse.bq.get_table(f"{warehouse.dataset}.parted")
    assert created.time_partitioning.field == "day"
    assert created.clustering_fields == ["id"]


def test_schema_field_mapping_is_explicit_for_every_family() -> None:
    schema = pa.schema([
        ("a", pa.int16()), ("b", pa.float32()), ("c", pa.decimal128(12, 2)), ("d", pa.decimal256(76, 38)),
        ("e", pa.timestamp("ns")), ("f", pa.timestamp("ms", tz="Europe/Paris")), ("g", pa.list_(pa.string())),
        ("h", pa.struct([("x", pa.bool_())])), ("i", pa.binary()), ("j", pa.time32("s")),
    ])
    fields = {f.name: (f.field_type, f.mode) for f in types.schema_fields(schema)}
    assert fields == {
        "a": ("INT64", "NULLABLE"), "b": ("FLOAT64", "NULLABLE"), "c": ("NUMERIC", "NULLABLE"),
        "d": ("BIGNUMERIC", "NULLABLE"), "e": ("DATETIME", "NULLABLE"), "f": ("TIMESTAMP", "NULLABLE"),
        "g": ("STRING", "REPEATED"), "h": ("RECORD", "NULLABLE"), "i": ("BYTES", "NULLABLE"), "j": ("TIME", "NULLABLE"),
    }
    with pytest.raises(ConnectorError, match="BIGNUMERIC"):
        types.schema_fields(pa.schema([("z", pa.decimal256(76, 0))]))


def test_empty_run_writes_only_the_commit_record(warehouse: Warehouse) -> None:
    result = warehouse.run(_memory_source(people([])), warehouse.keys(table="never"), name="empty")
    assert result.rows_written == 0
    assert not warehouse.exists("never")
    (state,) = warehouse.rows("SELECT state FROM `{ds}._dataloader_state` WHERE recipe_name = 'empty'")
    assert json.loads(state[0])["run_id"] == result.run_id
