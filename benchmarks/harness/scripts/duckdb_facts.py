"""Print the verification facts of a DuckDB table as JSON: ``duckdb_facts.py FILE SCHEMA.TABLE``."""

import json
import sys

import duckdb

path, table = sys.argv[1], sys.argv[2]
schema, _, name = table.rpartition(".")
quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema or "main", name))
con = duckdb.connect(path, read_only=True)
rows, distinct, total, nulls, cents, updated_ms = con.execute(
    "SELECT count(*), count(DISTINCT id), sum(id)::HUGEINT, count(*) - count(note), "
    "(sum(amount::DECIMAL(18, 2)) * 100)::HUGEINT, sum(epoch_ms(updated_at::TIMESTAMPTZ))::HUGEINT "
    f"FROM {quoted}"
).fetchone()
print(json.dumps({"rows": rows, "distinct_ids": distinct, "sum_id": int(total or 0), "null_notes": nulls,
                  "sum_amount_cents": int(cents or 0), "sum_updated_ms": int(updated_ms or 0)}))
