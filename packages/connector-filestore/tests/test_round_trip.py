"""CSV → DuckDB → Parquet → JSON Lines: the awkward CSV values arrive unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from dataloader.state import State
from dataloader_filestore.config import FilestoreConfig
from dataloader_filestore.connector import FilestoreConnector
from filestore_helpers import CUSTOMERS_CSV, dataset_dest, duckdb_plugin


def read_all(path: Path, fmt: str) -> pa.Table:
    connector = FilestoreConnector(FilestoreConfig.model_validate({"type": "filestore", "path": str(path), "format": fmt}))
    connector.open()
    return pa.Table.from_batches([b.to_arrow() for b in connector.read_batches(State())])


def test_csv_values_survive_duckdb_parquet_and_jsonl(run, host, tmp_path: Path) -> None:
    host.register(duckdb_plugin(), name="duckdb", distribution="dataloader-connector-duckdb")
    database = str(tmp_path / "warehouse.duckdb")
    run({"type": "filestore", "path": str(CUSTOMERS_CSV), "format": "csv"},
        {"type": "duckdb", "database": database, "table": "main.customers", "write_mode": "overwrite"}, name="to_duckdb")
    run({"type": "duckdb", "database": database, "table": "main.customers"},
        dataset_dest(tmp_path / "parquet", "parquet"), name="to_parquet")
    run({"type": "filestore", "path": str(tmp_path / "parquet"), "format": "parquet"},
        dataset_dest(tmp_path / "jsonl", "jsonl"), name="to_jsonl")

    original = read_all(CUSTOMERS_CSV, "csv").sort_by("id")
    final = read_all(tmp_path / "jsonl", "jsonl").sort_by("id")
    assert final.num_rows == original.num_rows == 200
    for name in ("id", "fname", "lname", "email", "city", "lifetime_value", "is_active", "note"):
        assert final.column(name).to_pylist() == original.column(name).to_pylist(), name
    # JSON has no date type: dates come back as midnight timestamps with the same day.
    days = [value.date() for value in final.column("signup_date").to_pylist()]
    assert days == original.column("signup_date").to_pylist()
    notes = set(final.column("note").to_pylist())
    assert {"line one\nline two", "tab\there", 'said "hello"'} <= notes
