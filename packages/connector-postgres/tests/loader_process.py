"""Run one connector operation in a child process (memory and kill tests).

    python loader_process.py read  '<section json>'          -> prints rows read, peak RSS
    python loader_process.py write '<section json>' ROWS      -> prints rows written, peak RSS
    python loader_process.py hang  '<section json>'           -> overwrites, prints READY mid-load, never commits
"""

from __future__ import annotations

import json
import resource
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
from dataloader.batch import Batch
from dataloader.connector import RunContext
from dataloader.state import State
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector


def _connector(section: dict, role: str) -> PostgresConnector:
    connector = PostgresConnector(PostgresConfig.model_validate(section))
    connector.context = RunContext(recipe_name="child", run_id="child-run", role=role, batch_size=50_000)
    connector.open()
    return connector


def _generated(start: int, rows: int) -> pa.RecordBatch:
    ids = pa.array(range(start, start + rows), pa.int64())
    return pa.RecordBatch.from_arrays(
        [
            ids,
            pc.binary_join_element_wise("customer ", ids.cast(pa.string()), " é", ""),
            pc.divide(ids.cast(pa.float64()), 7.0),
            pc.cast(pc.multiply(ids, 86_400_000_000 // 1000), pa.timestamp("us", tz="UTC")),
        ],
        names=["id", "name", "score", "at"],
    )


def _write(connector: PostgresConnector, total: int, mode: str, announce_after: int | None = None) -> int:
    first = _generated(0, 1)
    connector.begin(first.schema, mode, State())
    written, chunk = 0, 50_000
    while total < 0 or written < total:
        connector.write_batch(Batch.from_arrow(_generated(written, chunk)), State())
        written += chunk
        if announce_after is not None and written >= announce_after:
            print("READY", flush=True)
            announce_after = None
    return written


def main() -> None:
    command, section = sys.argv[1], json.loads(sys.argv[2])
    started = time.perf_counter()
    if command == "read":
        connector = _connector(section, "source")
        rows = sum(batch.row_count for batch in connector.read_batches(State()))
    elif command == "write":
        connector = _connector(section, "destination")
        rows = _write(connector, int(sys.argv[3]), "append")
        connector.commit(State())
    elif command == "hang":
        connector = _connector(section, "destination")
        _write(connector, -1, "overwrite", announce_after=100_000)  # killed long before it ends
        raise SystemExit("not killed")
    else:
        raise SystemExit(f"unknown command {command}")
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "peak_mib": peak_kib / 1024, "seconds": seconds}))


if __name__ == "__main__":
    main()
