"""Run one benchmark workload with dlt (executed by the peers venv's python).

``dlt_run.py WORKLOAD SPEC_JSON``. dlt's fastest documented paths: the ``sql_database`` source with
an Arrow backend (``pyarrow`` or ``connectorx``) for Postgres, ``read_csv_duckdb`` (DuckDB's CSV
reader yielding Arrow) for the CSV file, Parquet loader files wherever the destination takes them
(``csv`` for Postgres, which dlt loads with COPY).
"""

import json
import os
import sys

import dlt
from dlt.sources.filesystem import filesystem, read_csv_duckdb
from dlt.sources.sql_database import sql_table

workload, spec = sys.argv[1], json.loads(sys.argv[2])
spec["pg_url"] = os.environ["BENCH_PG_URL"]  # not on the command line: it may hold a password


def postgres_events():
    # SQLAlchemy (table reflection, and the pyarrow backend's reads) through psycopg2; connectorx
    # reads with its own Rust client from the plain URL.
    url = spec["pg_url"].replace("postgresql://", "postgresql+psycopg2://", 1)
    kwargs = {"conn": spec["pg_url"]} if spec["backend"] == "connectorx" else None
    return sql_table(credentials=url, schema="bench", table="events", backend=spec["backend"],
                     chunk_size=spec["chunk_size"], backend_kwargs=kwargs)


def csv_events():
    files = filesystem(bucket_url=spec["csv_dir"], file_glob=spec["csv_name"])
    return (files | read_csv_duckdb(chunk_size=spec["chunk_size"], use_pyarrow=True)).with_name("events")


if workload == "W1":
    destination, data, file_format = dlt.destinations.filesystem(bucket_url=spec["out_url"]), postgres_events(), "parquet"
elif workload == "W2":
    destination, data, file_format = dlt.destinations.postgres(spec["pg_url"]), csv_events(), "csv"
elif workload == "W3":
    destination, data, file_format = dlt.destinations.duckdb(spec["duckdb_path"]), csv_events(), "parquet"
elif workload == "W4":
    destination, data, file_format = dlt.destinations.duckdb(spec["duckdb_path"]), postgres_events(), "parquet"
else:
    raise SystemExit(f"unknown workload {workload}")

pipeline = dlt.pipeline(pipeline_name=spec["pipeline"], destination=destination, dataset_name=spec["dataset"],
                        pipelines_dir=spec["pipelines_dir"])
info = pipeline.run(data, write_disposition="replace", loader_file_format=file_format)
info.raise_on_failed_jobs()
print(info)
