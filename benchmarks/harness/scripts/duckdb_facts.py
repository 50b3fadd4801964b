"""Print the verification facts of a DuckDB table as JSON: ``duckdb_facts.py FILE SCHEMA.TABLE``."""

import json
import sys

import duckdb

path, table = sys.argv[1], sys.argv[2]
schema, _, name = table.rpartition(".")
quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema or "main", name))
con = duckdb.connect(path, read_only=True)
BASIC = "count(*), count(DISTINCT id), sum(id)::HUGEINT, count(*) - count(note)"
#: W5/W6 also check the merged values; a peer's W3/W4 table with other column types still gets the basic facts.
EXTRA = "(sum(amount::DECIMAL(18, 2)) * 100)::HUGEINT, sum(epoch_ms(updated_at::TIMESTAMPTZ))::HUGEINT"
try:
    row = con.execute(f"SELECT {BASIC}, {EXTRA} FROM {quoted}").fetchone()
except duckdb.Error:
    row = con.execute(f"SELECT {BASIC} FROM {quoted}").fetchone()
facts = dict(zip(("rows", "distinct_ids", "sum_id", "null_notes", "sum_amount_cents", "sum_updated_ms"),
                 (int(v or 0) for v in row), strict=False))
print(json.dumps(facts))
