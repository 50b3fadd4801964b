"""A file set whose files differ, read by the filestore source into DuckDB (issue 18, docs/schema.md)."""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from click.testing import CliRunner
from dataloader.cli import cli
from filestore_helpers import duckdb_plugin


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _write(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}))
    return str(path)


def _to_duckdb(tmp_path: Path, path: Path, incremental: bool = False) -> str:
    source = {"type": "filestore", "path": str(path), "format": "parquet"}
    if incremental:
        source["incremental"] = {"strategy": "modified_time"}
    return _write(tmp_path, "read", {
        "source": source,
        "destination": {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"},
    })


def _rows(tmp_path: Path, sql: str = "SELECT * FROM t ORDER BY id") -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_dataset_that_gained_a_column_and_widened_is_read_whole(tmp_path: Path, monkeypatch) -> None:
    duckdb_plugin()
    monkeypatch.chdir(tmp_path)
    writer = _write(tmp_path, "write", {
        "source": {"type": "filestore", "path": str(tmp_path / "src.parquet"), "format": "parquet"},
        "destination": {"type": "filestore", "path": str(tmp_path / "ds"), "format": "parquet"},
        "schema": {"evolution": {"mode": "auto"}},
    })
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32())}), tmp_path / "src.parquet")
    assert _cli("run", writer)[0] == 0
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "email": ["c@x"]}), tmp_path / "src.parquet")
    code, out = _cli("run", writer)
    assert code == 0, out
    reader = _to_duckdb(tmp_path, tmp_path / "ds")
    code, out = _cli("check", reader)
    assert code == 0, out
    code, out = _cli("run", reader)
    assert code == 0, out
    assert _rows(tmp_path) == [(1, None), (2, None), (3, "c@x")]
    types = dict(_rows(tmp_path, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='t'"))
    assert types == {"id": "BIGINT", "email": "VARCHAR"}


def test_off_lattice_files_are_refused_and_incremental_reads_only_new_files(tmp_path: Path, monkeypatch) -> None:
    duckdb_plugin()
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"id": pa.array([1], pa.int32())}), folder / "a.parquet")
    reader = _to_duckdb(tmp_path, folder, incremental=True)
    assert _cli("run", reader)[0] == 0
    pq.write_table(pa.table({"id": pa.array([2], pa.int64()), "note": ["n"]}), folder / "b.parquet")
    code, out = _cli("run", reader)
    assert code == 0, out
    assert _rows(tmp_path) == [(1, None), (2, "n")]
    stamp = pa.array([datetime.datetime(2026, 1, 1)], pa.timestamp("us"))
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "note": stamp}), folder / "c.parquet")
    code, out = _cli("run", reader)
    assert code == 1
    assert "column 'note'" in out and "string in" in out and "timestamp in" in out
    assert str(folder / "b.parquet") in out and str(folder / "c.parquet") in out and "Traceback" not in out
    assert _rows(tmp_path) == [(1, None), (2, "n")]
    # The refused run changed neither the table nor the file marks: the fixed file is read once,
    # a.parquet and b.parquet are not read again (append: a reread would duplicate their rows).
    (folder / "c.parquet").unlink()
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "note": ["m"]}), folder / "c.parquet")
    code, out = _cli("run", reader)
    assert code == 0, out
    assert _rows(tmp_path) == [(1, None), (2, "n"), (3, "m")]


def test_csv_files_whose_guessed_types_differ_load_as_what_all_their_text_holds(tmp_path: Path, monkeypatch) -> None:
    """Whole numbers in one file and fractions in the other are doubles; a date beside text is text."""
    duckdb_plugin()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("id,amount,note\n1,10,2024-01-02\n2,20,2024-01-03\n")
    (tmp_path / "in" / "b.csv").write_text("id,amount,note\n3,2.5,soon\n")
    reader = _write(tmp_path, "read", {
        "source": {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"},
        "destination": {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"},
    })
    code, out = _cli("run", reader)
    assert code == 0, out
    assert _rows(tmp_path) == [(1, 10.0, "2024-01-02"), (2, 20.0, "2024-01-03"), (3, 2.5, "soon")]
    types = dict(_rows(tmp_path, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='t'"))
    assert types == {"id": "BIGINT", "amount": "DOUBLE", "note": "VARCHAR"}
