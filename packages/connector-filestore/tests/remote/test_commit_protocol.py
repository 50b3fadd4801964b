"""Checkpoints, the dataset lock and source fingerprints on S3 (moto) and SFTP (sshd), through the CLI."""

from __future__ import annotations

import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def csv_bytes(rows: int) -> tuple[bytes, Counter]:
    table = pa.table({"id": list(range(rows)), "name": [f"row {n}" for n in range(rows)]})
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue(), Counter(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))


def s3_dataset_rows(s3, rel: str) -> tuple[Counter, list[str]]:
    manifest = json.loads(s3.fs.cat_file(s3.key(f"{rel}/_dataloader_manifest.json")))
    names = [part["name"] for part in manifest["parts"]]
    rows: Counter = Counter()
    for name in names:
        table = pq.read_table(io.BytesIO(s3.fs.cat_file(s3.key(f"{rel}/{name}"))))
        rows.update(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))
    return rows, names


def test_checkpointed_run_into_s3_keeps_every_row_exactly_once(cli, s3) -> None:
    data, expected = csv_bytes(45)
    s3.fs.pipe(s3.key("in/data.csv"), data)
    recipe = {
        "name": "cp_s3",
        "source": {"type": "filestore", "path": s3.url("in/data.csv"), "format": "csv", **s3.options},
        "destination": {"type": "filestore", "path": s3.url("out"), "format": "parquet", **s3.options},
        "runtime": {"batch_size": 1, "checkpoint_every": 10},
    }
    result = cli.run(recipe)
    assert result.exit_code == 0, result.output
    rows, names = s3_dataset_rows(s3, "out")
    assert rows == expected
    assert len(names) == len(set(names)) == 5
