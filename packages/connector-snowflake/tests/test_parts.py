"""A write streams: batches become Parquet parts of bounded size, each uploaded and deleted."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from conftest import query
from dataloader.batch import Batch
from dataloader.state import State
from dataloader_snowflake.parts import SEQ, PartWriter
from target import connector


def _batch(start: int, rows: int) -> pa.RecordBatch:
    return pa.record_batch({
        "id": pa.array(range(start, start + rows), pa.int64()),
        "text": pa.array([f"{i:08d}-" + "x" * 40 for i in range(start, start + rows)]),
    })


def test_parts_roll_over_at_the_size_limit_and_leave_no_local_files():
    seen: list[tuple[str, int, int]] = []

    def upload(path: Path) -> None:
        seen.append((path.name, len(list(path.parent.iterdir())), path.stat().st_size))

    writer = PartWriter(upload, part_bytes=256 * 1024, numbered=True)
    for n in range(20):
        writer.write(_batch(n * 5000, 5000))
    writer.flush()
    directory = next(iter(seen))[0] and writer._dir
    writer.close()
    assert len(seen) >= 3
    assert all(files == 1 for _, files, _ in seen), "more than one part on disk at a time"
    assert writer.rows == 100_000
    assert not Path(directory).exists()


def test_merge_parts_number_rows_in_load_order(tmp_path):
    import pyarrow.parquet as pq

    kept: list[pa.Table] = []
    writer = PartWriter(lambda path: kept.append(pq.read_table(path)), part_bytes=1 << 30, numbered=True)
    writer.write(_batch(0, 3))
    writer.write(_batch(3, 2))
    writer.flush()
    writer.close()
    assert kept[0].column(SEQ).to_pylist() == [0, 1, 2, 3, 4]


def test_a_multi_part_load_commits_every_row_once(section, unique, sf):
    table = unique("parts")
    keys = section(table=f'"{table}"', part_size_mb=1)
    with connector(keys) as destination:
        destination.begin(_batch(0, 1).schema, "append", State())
        for n in range(8):
            destination.write_batch(Batch.from_arrow(_batch(n * 25_000, 25_000)), State())
        parts = destination._load._parts.parts
        destination.commit(State())
    assert parts >= 2
    assert query(sf, f'SELECT COUNT(*), COUNT(DISTINCT "id") FROM "{table}"') == [(200_000, 200_000)]
