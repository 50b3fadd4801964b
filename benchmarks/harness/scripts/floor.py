"""The native floor for each workload: the least a Python EL tool has to do, done with the engines' own tools.

``floor.py WORKLOAD SPEC_JSON``
- W1: ``psql \\copy ... TO STDOUT`` (CSV) streamed into pyarrow's CSV reader, written by ``ParquetWriter``.
- W2: ``psql \\copy ... FROM`` the CSV file, after TRUNCATE, in one transaction (replace).
- W3: DuckDB's own ``read_csv`` into ``CREATE OR REPLACE TABLE``.
- W4: ``psql \\copy ... TO STDOUT`` streamed into pyarrow, the Arrow stream inserted by DuckDB.
- ``merge`` (W5/W6): the rows past the mark kept in ``state_path`` (all of them on the first run), by
  ``psql \\copy (SELECT ... WHERE updated_at > mark) TO STDOUT``; into DuckDB through Arrow with
  ``INSERT OR REPLACE`` (the table is keyed on id), into Postgres through a staging ``\\copy`` and
  ``INSERT ... ON CONFLICT (id) DO UPDATE``, in one transaction. The new mark is written after the commit.
"""

import json
import os
import subprocess
import sys

workload, spec = sys.argv[1], json.loads(sys.argv[2])
ROW_GROUP_ROWS = 128 * 1024
PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", spec.get("pg_conninfo", "")]


def copy_out_reader(query="bench.events"):
    """An Arrow RecordBatchReader over ``COPY bench.events TO STDOUT`` run by psql."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    env = {**os.environ, "PGTZ": "UTC"}
    psql = subprocess.Popen([*PSQL, "-c", f"\\copy {query} TO STDOUT WITH (FORMAT csv)"],
                            stdout=subprocess.PIPE, env=env)
    schema = pa.schema([
        ("id", pa.int64()), ("user_id", pa.int32()), ("event_type", pa.string()),
        ("amount", pa.decimal128(12, 2)), ("ratio", pa.float64()), ("is_active", pa.bool_()),
        ("created_at", pa.timestamp("us", tz="UTC")), ("updated_at", pa.timestamp("us", tz="UTC")),
        ("payload", pa.string()), ("note", pa.string()),
    ])
    if not psql.stdout.peek(1):  # no rows at all (an incremental run that finds nothing): no CSV to parse
        return psql, None
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
elif workload == "merge":
    COLUMNS = ["id", "user_id", "event_type", "amount", "ratio", "is_active", "created_at", "updated_at",
               "payload", "note"]
    state_path = spec["state_path"]
    mark = None
    if os.path.exists(state_path):
        with open(state_path) as fh:
            mark = json.load(fh)["mark_us"]
    where = f" WHERE updated_at > timestamptz 'epoch' + {int(mark)} * interval '1 microsecond'" if mark else ""
    query = f"(SELECT * FROM {spec['source']}{where})"
    if spec["kind"] == "duckdb":
        import duckdb
        import pyarrow as pa

        psql, reader = copy_out_reader(query)
        counted = [0]

        def batches():
            for batch in reader:
                counted[0] += batch.num_rows
                yield batch

        con = duckdb.connect(spec["duckdb_path"])
        con.execute("CREATE TABLE IF NOT EXISTS events (id BIGINT PRIMARY KEY, user_id INTEGER, event_type VARCHAR, "
                    "amount DECIMAL(12,2), ratio DOUBLE, is_active BOOLEAN, created_at TIMESTAMPTZ, "
                    "updated_at TIMESTAMPTZ, payload VARCHAR, note VARCHAR)")
        new_mark = None
        if reader is not None:
            con.register("incoming", pa.RecordBatchReader.from_batches(reader.schema, batches()))
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO events SELECT * FROM incoming")
            new_mark = con.execute("SELECT epoch_us(max(updated_at)) FROM events").fetchone()[0]
            con.execute("COMMIT")
        con.close()
        finish(psql)
        rows = counted[0]
    else:
        table, updates = spec["pg_table"], ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
        env = {**os.environ, "PGTZ": "UTC"}
        source = subprocess.Popen([*PSQL, "-c", f"\\copy {query} TO STDOUT WITH (FORMAT csv)"],
                                  stdout=subprocess.PIPE, env=env)
        target = subprocess.run(
            [*PSQL, "-At", "-F", "|",
             "-c", f"CREATE SCHEMA IF NOT EXISTS {spec['pg_schema']}",
             "-c", f"CREATE TABLE IF NOT EXISTS {table} (LIKE {spec['source']} INCLUDING ALL)",
             "-c", "BEGIN",
             "-c", f"CREATE TEMP TABLE stage (LIKE {table}) ON COMMIT DROP",
             "-c", "\\copy stage FROM pstdin WITH (FORMAT csv)",
             "-c", f"INSERT INTO {table} SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET {updates}",
             "-c", "SELECT count(*), (extract(epoch FROM max(updated_at)) * 1000000)::bigint FROM stage",
             "-c", "COMMIT"],
            stdin=source.stdout, stdout=subprocess.PIPE, text=True, env=env, check=True)
        source.stdout.close()
        finish(source)
        counts = [line for line in target.stdout.splitlines() if "|" in line]
        rows, got_mark = counts[-1].split("|")
        rows, new_mark = int(rows), (int(got_mark) if got_mark else None)
    if rows and new_mark is not None:
        with open(state_path + ".tmp", "w") as fh:
            json.dump({"mark_us": int(new_mark)}, fh)
        os.replace(state_path + ".tmp", state_path)
    print(f"floor: {rows} rows read")
else:
    raise SystemExit(f"unknown workload {workload}")
