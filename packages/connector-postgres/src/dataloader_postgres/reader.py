"""Reading: ``COPY (SELECT ...) TO STDOUT`` streamed into Arrow record batches.

The COPY runs on a helper thread that writes the server's CSV into an OS pipe; Arrow's streaming
CSV reader parses the other end block by block with the column types taken from the catalog. So
memory stays flat (one pipe buffer plus a few parse blocks) however large the table is, and no
Python code runs per row. Most columns, timestamptz included (the session's TimeZone is UTC, so
the server prints ``+00`` offsets), parse straight into their final Arrow type; the few whose CSV
text Arrow cannot parse (bytea, arrays, numerics wider than decimal128) are rewritten in the
SELECT where needed and converted column-wise afterwards (``encoding``). A block whose columns all
parse directly passes through without a copy.

The connector cuts the parse blocks into batches of the run's ``batch_size`` rows with the core's
``rechunk``, which slices and joins them without copying.

Values never enter SQL as text: the cursor predicate and partition bounds are ``sql.Literal``s
(COPY cannot take bind parameters) and every identifier is a ``sql.Identifier``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
from dataloader.errors import ConnectorError

from dataloader_postgres import encoding
from dataloader_postgres.types import PgType, ReadColumn, read_column

#: Bytes of CSV per parse block. Arrow's streaming reader reads up to 32 blocks ahead, so this
#: bounds the read-ahead to 16 MiB; larger blocks measured no faster (they fall out of cache).
BLOCK_SIZE = 512 << 10
#: Pipe capacity asked for (Linux allows unprivileged processes up to 1 MiB): fewer wake-ups of
#: the COPY thread and the parser than with the default 64 KiB.
PIPE_SIZE = 1 << 20
_CSV_COLUMN = re.compile(r"CSV column #(\d+)")

_TYPE_QUERY = """
SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype, t.typtypmod,
       format_type(t.oid, NULL)
FROM pg_catalog.pg_type t WHERE t.oid = ANY(%s)
"""
_TABLE_COLUMNS = """
SELECT a.attname, a.atttypid, a.atttypmod
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY a.attnum
"""


_NOT_NULL_COLUMNS = """
SELECT a.attname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
"""


def not_null_columns(cur: Any, schema: str, table: str) -> set[str]:
    """The names of the table's ``NOT NULL`` columns (what the schema gate reports as not null)."""
    cur.execute(_NOT_NULL_COLUMNS, (schema, table))
    return {name for (name,) in cur.fetchall()}


def declared_schema(columns: list[ReadColumn], not_null: set[str]) -> pa.Schema:
    """The Arrow schema of ``columns`` with the catalog's nullability (batches themselves stay nullable)."""
    return pa.schema([c.arrow_field().with_nullable(c.name not in not_null) for c in columns])


def type_catalog(cur: Any, oids: set[int]) -> dict[int, PgType]:
    """``pg_type`` rows for ``oids`` and every element and base type they refer to."""
    catalog: dict[int, PgType] = {}
    pending = set(oids)
    while pending:
        cur.execute(_TYPE_QUERY, (sorted(pending),))
        for oid, name, typtype, category, elem, base, base_typmod, display in cur.fetchall():
            catalog[oid] = PgType(oid, name, typtype, category, elem, base, base_typmod, display)
        pending = {t.elem for t in catalog.values() if t.elem} | {t.base for t in catalog.values() if t.base}
        pending -= set(catalog)
    return catalog


def describe_table(cur: Any, schema: str, table: str) -> list[tuple[str, int, int]]:
    cur.execute(_TABLE_COLUMNS, (schema, table))
    return list(cur.fetchall())


def describe_query(cur: Any, query: str) -> list[tuple[str, int, int]]:
    from psycopg2 import sql

    cur.execute(sql.SQL("SELECT * FROM ({}) AS _dataloader_query LIMIT 0").format(sql.SQL(query)))
    described = []
    for column in cur.description:
        typmod = -1
        if column.type_code == 1700 and column.precision is not None and column.precision != 65535:
            typmod = ((column.precision << 16) | (column.scale & 0xFFFF)) + 4
        described.append((column.name, column.type_code, typmod))
    return described


def plan_columns(cur: Any, described: list[tuple[str, int, int]]) -> list[ReadColumn]:
    seen: set[str] = set()
    for name, _, _ in described:
        if name in seen:
            raise ConnectorError(
                f"the query returns two columns named {name!r}; give them distinct aliases", column=name
            )
        seen.add(name)
    catalog = type_catalog(cur, {oid for _, oid, _ in described})
    return [read_column(name, catalog[oid], typmod, catalog) for name, oid, typmod in described]


def select_list(columns: list[ReadColumn]) -> Any:
    from psycopg2 import sql

    parts = []
    for column in columns:
        ident = sql.Identifier(column.name)
        if column.kind == "json_list":
            parts.append(sql.SQL("array_to_json({0})::text AS {0}").format(ident))
        elif column.kind == "json_text_list":
            parts.append(sql.SQL("array_to_json({0}::text[])::text AS {0}").format(ident))
        else:
            parts.append(ident)
    return sql.SQL(", ").join(parts)


class _PipeProducer(threading.Thread):
    """Runs the COPY on ``conn`` and writes its output into the write end of a pipe."""

    def __init__(self, conn: Any, copy_sql: Any, write_fd: int) -> None:
        super().__init__(name="dataloader-postgres-copy", daemon=True)
        self.conn, self.copy_sql, self.write_fd = conn, copy_sql, write_fd
        self.error: BaseException | None = None

    def run(self) -> None:
        sink = os.fdopen(self.write_fd, "wb", buffering=1 << 20)
        try:
            with self.conn.cursor() as cur:
                cur.copy_expert(self.copy_sql, sink)
        except BaseException as exc:  # handed to the consuming thread, which raises it
            self.error = exc
        finally:
            try:
                sink.close()
            except OSError:
                pass  # the reader closed its end first (early stop); nothing left to flush to


def _csv_options(columns: list[ReadColumn]) -> tuple[Any, Any, Any]:
    names = [f"c{i}" for i in range(len(columns))]
    read = pa_csv.ReadOptions(column_names=names, block_size=BLOCK_SIZE, use_threads=True)
    texty = any(c.kind == "plain" and pa.types.is_string(c.wire_type) for c in columns)
    parse = pa_csv.ParseOptions(newlines_in_values=texty, double_quote=True)
    convert = pa_csv.ConvertOptions(
        column_types={name: c.wire_type for name, c in zip(names, columns, strict=True)},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    return read, parse, convert


def _finish(columns: list[ReadColumn], schema: pa.Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The parsed block as a batch of ``schema``: converted where a column needs it, else as is."""
    if all(column.kind == "plain" for column in columns):
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)  # renames only, no copy
    arrays = []
    for index, column in enumerate(columns):
        array = batch.column(index)
        try:
            if column.kind == "cast":
                array = array.cast(column.arrow_type)
            elif column.kind == "bytea":
                array = encoding.bytea_from_hex(array)
            elif column.kind == "json_list":
                array = encoding.lists_from_json(array, column.arrow_type)
            elif column.kind == "json_text_list":
                array = encoding.lists_from_json(array, pa.list_(pa.string())).cast(column.arrow_type)
        except (pa.ArrowException, ValueError) as exc:
            raise ConnectorError(
                f"column {column.name!r} ({column.pg_type}) holds a value that cannot be read as "
                f"{column.arrow_type}: {exc}",
                column=column.name,
                pg_type=column.pg_type,
            ) from exc
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _parse_error(exc: pa.ArrowException, columns: list[ReadColumn], where: str) -> ConnectorError:
    text = str(exc)
    match = _CSV_COLUMN.search(text)
    if match and int(match.group(1)) < len(columns):
        column = columns[int(match.group(1))]
        detail = text.split(":", 1)[1].strip() if ":" in text else text
        return ConnectorError(
            f"{where}: column {column.name!r} ({column.pg_type}) holds a value that does not fit "
            f"{column.arrow_type} (NaN, infinity, out-of-range dates, or more digits than the type "
            f"allows are not representable): {detail}",
            column=column.name,
            pg_type=column.pg_type,
        )
    return ConnectorError(f"{where}: could not parse COPY output: {text}")


def stream_copy(
    conn: Any,
    select: Any,
    columns: list[ReadColumn],
    schema: pa.Schema,
    *,
    on_error: Any,
    where: str,
    unlimited: bool = False,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``select`` as record batches of ``schema``, streamed through COPY.

    ``on_error(exc)`` turns a driver exception into a dataloader one (the connector's boundary).
    ``unlimited``: lift the session's ``statement_timeout`` for this transaction (a COPY lasts as
    long as the read).
    """
    from psycopg2 import sql

    if unlimited:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('statement_timeout', '0', true)")
        except Exception as exc:
            raise on_error(exc) from exc

    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(select).as_string(conn)
    read_fd, write_fd = os.pipe()
    _widen_pipe(write_fd)
    producer = _PipeProducer(conn, copy_sql, write_fd)
    # Buffered: a read of BLOCK_SIZE then waits for a whole block (a raw pipe read returns what
    # the pipe holds, and the parser would work on thousands of tiny blocks).
    pipe = os.fdopen(read_fd, "rb", buffering=PIPE_SIZE)
    # Arrow's own stream on top copies each block into an Arrow buffer: blocks that wrap Python
    # bytes must take the GIL when freed, which aborts the process if Arrow's read-ahead frees
    # one while the interpreter is exiting.
    source = pa.BufferedInputStream(pa.PythonFile(pipe, mode="r"), 1 << 16)
    producer.start()
    finished = False
    try:
        read_options, parse_options, convert_options = _csv_options(columns)
        try:
            reader = pa_csv.open_csv(
                source, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
        except StopIteration:
            reader = None  # pyarrow raises this for an empty stream in some versions
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" not in str(exc):
                raise
            reader = None
        while reader is not None:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            yield _finish(columns, schema, batch)
        finished = True
    except pa.ArrowException as exc:
        # A COPY that failed on the server ends the stream early; its error explains the rest.
        if producer.error is not None:
            raise on_error(producer.error) from producer.error
        raise _parse_error(exc, columns, where) from exc
    finally:
        if not finished and producer.is_alive():
            # Stopped early: cancel the COPY and break the pipe so the producer cannot block.
            # (After a normal end the producer is only closing the pipe; a cancel then could
            # hit the connection's next statement instead.)
            _cancel(conn)
        source.close()
        pipe.close()
        producer.join()
    if finished and producer.error is not None:
        raise on_error(producer.error) from producer.error


def _widen_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or a lower limit: the default capacity only costs some speed


def _cancel(conn: Any) -> None:
    """Stop a COPY the consumer no longer wants (early exit or a failure while parsing)."""
    try:
        conn.cancel()
    except Exception:
        pass  # the connection is being discarded either way
