"""Run the fakesnow emulator in server mode on a port, with the test harness's workarounds.

    python fakesnow_server.py PORT

Serves until it is terminated (SIGTERM/SIGINT). The workarounds below patch fakesnow 0.12.1's
own code in this process only; the connector sends the SQL it sends to Snowflake:

* MERGE inside BEGIN … COMMIT: fakesnow runs a MERGE as a temporary ``merge_candidates`` table
  plus updates, and records that table's (empty) comment in its global catalog database, which
  DuckDB refuses inside a transaction that already wrote to the user's database ("a single
  transaction can only write to a single attached database"). The comment is dropped.
* NULL timestamps: server mode encodes a TIMESTAMP column as a struct without a validity mask,
  so a NULL reads back as 1970-01-01. The struct gets the column's nulls.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import pyarrow as pa


def patch_fakesnow() -> None:
    from fakesnow.cursor import FakeSnowflakeCursor
    from sqlglot import exp

    execute = FakeSnowflakeCursor._execute

    def _execute(self, transformed, params=None):  # type: ignore[no-untyped-def]
        if isinstance(transformed, exp.Create) and transformed.args.get("table_comment"):
            table = transformed.find(exp.Table)
            if table is not None and table.name.lower() == "merge_candidates":
                transformed.set("table_comment", None)
        return execute(self, transformed, params)

    FakeSnowflakeCursor._execute = _execute  # type: ignore[method-assign]

    arrow = importlib.import_module("fakesnow.arrow")
    to_struct = arrow.timestamp_to_sf_struct

    def timestamp_to_sf_struct(ts):  # type: ignore[no-untyped-def]
        struct = to_struct(ts)
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        if ts.null_count == 0:
            return struct
        children = [struct.field(i).fill_null(0) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=ts.is_null())

    arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


def main(port: int) -> None:
    patch_fakesnow()
    import fakesnow

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with fakesnow.server(port=port, host="127.0.0.1"):
        print(f"fakesnow listening on 127.0.0.1:{port}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]))
