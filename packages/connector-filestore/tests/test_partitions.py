"""A file set's partitions: one per file; the local executor reads several at once with runtime.parallelism."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from dataloader.engine import run_recipe
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend
from dataloader.testing import partition_threads
from dataloader_filestore.connector import FilestoreConnector


def write_files(folder, overlap: bool = False) -> None:
    folder.mkdir()
    for f in range(4):
        start = f * 50 if overlap else f * 100
        ids = list(range(start, start + 100))
        pacsv.write_csv(pa.table({"id": ids, "label": [f"file{f}" for _ in ids]}), folder / f"part-{f}.csv")


def run(tmp_path, runtime, **destination):
    return run_recipe(
        Recipe.from_dict({
            "name": "files",
            "source": {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"},
            "destination": {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t", **destination},
            "runtime": {"batch_size": 30, **runtime},
        }),
        LocalStateBackend(tmp_path / "state"), history=False,
    )


def rows(tmp_path):
    con = duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True)
    try:
        return con.execute("SELECT id, label FROM t ORDER BY id").fetchall()
    finally:
        con.close()


def test_parallel_reads_of_files_load_every_row_once(tmp_path, monkeypatch):
    write_files(tmp_path / "in")
    threads = partition_threads(monkeypatch, FilestoreConnector)
    result = run(tmp_path, {"parallelism": 2})
    assert result.rows_written == 400
    assert [r[0] for r in rows(tmp_path)] == list(range(400))
    assert len(threads) == 2


def test_a_merge_reads_files_in_order_so_the_last_file_wins_even_with_parallelism(tmp_path):
    write_files(tmp_path / "in", overlap=True)
    run(tmp_path, {"parallelism": 3}, write_mode="merge", merge_keys=["id"])
    got = dict(rows(tmp_path))
    assert len(got) == 250
    assert got[0] == "file0" and got[60] == "file1" and got[120] == "file2" and got[249] == "file3"
