"""The native floor for each workload: the least a Python EL tool has to do, done with the engines' own tools.

``floor.py WORKLOAD SPEC_JSON``
- W1: ``psql \\copy ... TO STDOUT`` (CSV) streamed into pyarrow's CSV reader, written by ``ParquetWriter``.
- W2: ``psql \\copy ... FROM`` the CSV file, after TRUNCATE, in one transaction (replace).
- W3: DuckDB's own ``read_csv`` into ``CREATE OR REPLACE TABLE``.
- W4: ``psql \\copy ... TO STDOUT`` streamed into pyarrow, the Arrow stream inserted by DuckDB.
"""

import json
import os
import subprocess
import sys

workload, spec = sys.argv[1], json.loads(sys.argv[2])
ROW_GROUP_ROWS = 128 * 1024
PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", spec.get("pg_conninfo", "")]


def copy_out_reader():
    """An Arrow RecordBatchReader over ``COPY bench.events TO STDOUT`` run by psql."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    env = {**os.environ, "PGTZ": "UTC"}
    psql = subprocess.Popen([*PSQL, "-c", "\\copy bench.events TO STDOUT WITH (FORMAT csv)"],
                            stdout=subprocess.PIPE, env=env)
    schema = pa.schema([
        ("id", pa.int64()), ("user_id", pa.int32()), ("event_type", pa.string()),
        ("amount", pa.decimal128(12, 2)), ("ratio", pa.float64()), ("is_active", pa.bool_()),
        ("created_at", pa.timestamp("us", tz="UTC")), ("updated_at", pa.timestamp("us", tz="UTC")),
        ("payload", pa.string()), ("note", pa.string()),
    ])
    reader = pacsv.open_csv(
        psql.stdout,
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=1 << 22),
        convert_options=pacsv.ConvertOptions(column_types=schema, true_values=["t"], false_values=["f"],
                                             strings_can_be_null=True, quoted_strings_can_be_null=False),
    )
    return psql, reader


def finish(psql):
    if psql.wait() != 0:
        raise SystemExit(f"psql exited with {psql.returncode}")


if workload == "W1":
    import pyarrow as pa
    import pyarrow.parquet as pq

    psql, reader = copy_out_reader()
    out = spec["out_path"]
    with pq.ParquetWriter(out + ".tmp", reader.schema, compression="snappy") as writer:
        pending, rows = [], 0
        for batch in reader:  # row groups of ~128k rows rather than one per CSV block
            pending.append(batch)
            rows += batch.num_rows
            if rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending))
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
    finish(psql)
    os.replace(out + ".tmp", out)
elif workload == "W2":
    table = spec["pg_table"]
    subprocess.run([*PSQL, "-c", "BEGIN", "-c", f"TRUNCATE {table}",
                    "-c", f"\\copy {table} FROM '{spec['csv_path']}' WITH (FORMAT csv, HEADER true)",
                    "-c", "COMMIT"], check=True)
elif workload == "W3":
    import duckdb

    con = duckdb.connect(spec["duckdb_path"])
    con.execute("CREATE OR REPLACE TABLE events AS SELECT * FROM read_csv(?)", [spec["csv_path"]])
    con.close()
elif workload == "W4":
    import duckdb

    psql, reader = copy_out_reader()
    con = duckdb.connect(spec["duckdb_path"])
    con.register("incoming", reader)
    con.execute("CREATE OR REPLACE TABLE events AS SELECT * FROM incoming")
    con.close()
    finish(psql)
else:
    raise SystemExit(f"unknown workload {workload}")
