"""Writing: COPY into a session-temporary staging table, then one transaction publishes it.

``begin`` opens the transaction, checks the incoming schema against the target (refusing an
incompatible type change before any data moves) and creates ``_dataloader_stage`` as a TEMP
table dropped at commit. Every ``write_batch`` turns the Arrow batch into CSV with Arrow's writer
and hands it to one ``COPY ... FROM STDIN`` that runs for the whole run on a helper thread
(:mod:`dataloader_postgres.copy_in`), so encoding a batch overlaps the server ingesting the one
before; a batch with another column list ends that COPY and starts the next. ``commit`` ends the
COPY, creates the schema and table when missing, adds new columns as nullable, moves the staged
rows by mode, writes the run's commit record (:class:`~dataloader.run.ledger.CommitRecord`) into
``public._dataloader_state`` and commits: readers see the table
before or after, never between. A failure, ``abort`` or a killed process rolls everything back;
the TEMP table dies with the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from dataloader._lazy import compute as pc
from dataloader.errors import ConnectorError
from dataloader.run.ledger import CommitRecord, CommitRecordTable

from dataloader_postgres import encoding
from dataloader_postgres.copy_in import CopyInStream
from dataloader_postgres.types import check_compatible, pg_type_for, storage_type

STAGE = "_dataloader_stage"
SEQ = "_dataloader_seq"
STATE_TABLE = ("public", CommitRecordTable.TABLE)
#: Transaction-level advisory lock key serialising the creation of the commit-record table.
_STATE_TABLE_LOCK = 0x646C5F7374617465  # "dl_state"

_TARGET_COLUMNS = """
SELECT a.attname, t.typname, t.typcategory, format_type(a.atttypid, a.atttypmod), a.attnum,
       bt.typname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_UNIQUE_KEYS = """
SELECT array_agg(a.attname ORDER BY a.attname)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid
"""


_TRUNCATABLE = """
SELECT has_table_privilege(c.oid, 'TRUNCATE')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f WHERE f.confrelid = c.oid AND f.contype = 'f')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""


@dataclass
class TargetColumn:
    name: str
    type_name: str
    category: str
    display: str


def target_columns(cur: Any, schema: str, table: str) -> dict[str, TargetColumn] | None:
    """The target's columns by name, or None when the table does not exist."""
    cur.execute(_TARGET_COLUMNS, (schema, table))
    rows = cur.fetchall()
    if not rows:
        cur.execute(
            "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (schema, table),
        )
        if cur.fetchone() is None:
            return None
    return {
        name: TargetColumn(name, base or type_name, category, display)
        for name, type_name, category, display, _, base in rows
    }


def copy_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with every column in a form Arrow's CSV writer renders as COPY input."""
    arrays, fields = [], []
    for arrow_field, array in zip(batch.schema, batch.columns, strict=True):
        if isinstance(array.type, pa.ExtensionType):
            array = array.storage
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        t = storage_type(array.type)
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            array = encoding.hex_from_bytea(array)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            array = encoding.array_literals(array)
        elif pa.types.is_null(t) or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t)):
            array = array.cast(pa.string())
        elif pa.types.is_float16(t):
            array = array.cast(pa.float32())
        elif pa.types.is_timestamp(t) and t.tz:
            # The same instants without a zone: rendering zones is slow in Arrow's CSV writer, and
            # the session's TimeZone is UTC, so PostgreSQL reads them back as the same instants.
            array = array.cast(pa.timestamp(t.unit))
        arrays.append(array)
        fields.append(pa.field(arrow_field.name, array.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class StagedWrite:
    """One run's write into ``schema.table`` on ``conn`` (a connection not in autocommit)."""

    def __init__(
        self,
        conn: Any,
        schema: str,
        table: str,
        mode: str,
        merge_keys: list[str],
        overwrite_method: str = "truncate",
        *,
        statement_timeout: float | None = None,
        nul_bytes: str = "error",
    ) -> None:
        self.conn, self.schema, self.table, self.mode = conn, schema, table, mode
        self.merge_keys = list(merge_keys)
        self.overwrite_method = overwrite_method
        #: The session's ``statement_timeout`` (seconds): lifted for the COPY, restored after it.
        self.statement_timeout = statement_timeout
        #: ``error`` (refuse a text value with U+0000) or ``remove`` (drop those characters).
        self.nul_bytes = nul_bytes
        self.label = f"table {schema}.{table}"
        self.arrow_schema: pa.Schema | None = None
        self.existing: dict[str, TargetColumn] | None = None
        self.column_types: dict[str, str] = {}
        #: Existing columns the recipe's schema policy widens in this transaction: name -> new type.
        self.widen: dict[str, str] = {}
        self.rows_staged = 0
        #: append/overwrite COPY straight into the target inside the run's transaction.
        self.direct = mode in ("append", "overwrite")
        #: The running COPY; while it runs, nothing else may use ``conn``.
        self._copy: CopyInStream | None = None

    # -- begin -----------------------------------------------------------------------------
    def begin(self, arrow_schema: pa.Schema | None) -> None:
        from psycopg2 import sql

        self.arrow_schema = arrow_schema
        with self.conn.cursor() as cur:
            self.existing = target_columns(cur, self.schema, self.table)
            if arrow_schema is None:
                return
            self._check_schema(arrow_schema)
            if self.direct:
                # One copy of the rows: the open transaction hides them (and the emptying of an
                # overwrite) from readers until COMMIT, exactly as a staging table would.
                self._ensure_table(cur)
                if self.mode == "overwrite" and self.existing is not None:
                    self._empty_target(cur)
                return
            definitions = [
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type))
                for name, pg_type in self.column_types.items()
            ]
            definitions.append(sql.SQL("{} bigserial").format(sql.Identifier(SEQ)))
            cur.execute(
                sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                    sql.Identifier(STAGE), sql.SQL(", ").join(definitions)
                )
            )

    def _check_schema(self, arrow_schema: pa.Schema) -> None:
        names = arrow_schema.names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConnectorError(f"the data has two columns named {duplicates[0]!r}", column=duplicates[0])
        missing = [key for key in self.merge_keys if key not in names]
        if self.mode == "merge" and missing:
            raise ConnectorError(
                f"merge key {missing[0]!r} is not a column of the data written to {self.label} "
                f"(columns: {', '.join(names)})",
                column=missing[0],
            )
        for arrow_field in arrow_schema:
            current = (self.existing or {}).get(arrow_field.name)
            if current is not None and arrow_field.name in self.widen:
                self.column_types[arrow_field.name] = self.widen[arrow_field.name]
            elif current is not None:
                check_compatible(arrow_field, current.type_name, current.category, current.display, self.label)
                self.column_types[arrow_field.name] = current.display
            else:
                self.column_types[arrow_field.name] = pg_type_for(arrow_field)

    # -- write -----------------------------------------------------------------------------
    def write(self, pieces: list[pa.RecordBatch]) -> None:
        """Encode a batch's pieces as CSV and queue them for the running COPY (raises its error).

        The pieces (record batches of one schema) are encoded one after another into one payload
        instead of being joined first.
        """
        parts = [part for part in pieces if part.num_rows]
        if not parts:
            return
        batch = parts[0]
        rows = sum(part.num_rows for part in parts)
        if self.arrow_schema is None:
            raise ConnectorError(f"write_batch called for {self.label} after begin() was given no schema")
        unknown = [name for name in batch.schema.names if name not in self.column_types]
        if unknown:
            raise ConnectorError(
                f"batch has column {unknown[0]!r} that the first batch written to {self.label} did not have",
                column=unknown[0],
            )
        if self.mode == "merge":
            for key in self.merge_keys:
                if any(part.column(key).null_count for part in parts):
                    raise ConnectorError(
                        f"merge key column {key!r} is NULL in a row written to {self.label}; "
                        "merge needs every key present",
                        column=key,
                    )
        ready = [self._without_nul(copy_ready(part), self.rows_staged + sum(p.num_rows for p in parts[:i]))
                 for i, part in enumerate(parts)]
        table = pa.Table.from_batches(ready) if len(ready) > 1 else ready[0]
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, batch_size=max(1024, rows)))
        payload = sink.getvalue().to_pybytes()  # psycopg2 sends only bytes
        columns = tuple(batch.schema.names)
        if self._copy is not None and self._copy.columns != columns:
            self.end_copy()
        if self._copy is None:
            if self.statement_timeout:  # the COPY lasts as long as the load
                self._set_statement_timeout("0")
            self._copy = CopyInStream(self.conn, self._copy_statement(columns), columns)
        self._copy.send(payload)
        self.rows_staged += rows

    def _without_nul(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        """PostgreSQL text cannot hold U+0000: refuse it naming column and row, or remove it.

        Checked before the rows are sent, so nothing of the run is committed; the server would
        only say ``invalid byte sequence for encoding "UTF8": 0x00`` with a COPY line number.
        """
        arrays, changed = list(batch.columns), False
        for index, (name, array) in enumerate(zip(batch.schema.names, arrays, strict=True)):
            if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
                continue
            data = array.buffers()[2]
            if data is None or data.size == 0 or np.frombuffer(data, dtype=np.uint8).min() > 0:
                continue  # the usual case, in milliseconds per million values (no copy, no mask)
            found = pc.fill_null(pc.match_substring(array, "\x00"), False)
            if not pc.any(found).as_py():
                continue
            if self.nul_bytes == "remove":
                arrays[index], changed = pc.replace_substring(array, "\x00", ""), True
                continue
            row = first_row + pc.index(found, True).as_py() + 1
            raise ConnectorError(
                f"column {name!r}, row {row:,} of the rows written to {self.label} holds a NUL character "
                "(\\x00), which PostgreSQL text cannot store; nothing was committed. Set `nul_bytes: remove` "
                "on the destination to drop NUL characters from text values, or clean the source",
                column=name,
                row=row,
            )
        return pa.RecordBatch.from_arrays(arrays, schema=batch.schema) if changed else batch

    def _copy_statement(self, columns: tuple[str, ...]) -> str:
        from psycopg2 import sql

        # No FREEZE: PostgreSQL takes it only for a table created or truncated in this transaction,
        # and frozen rows would show to snapshots taken before the commit.
        into = sql.Identifier(self.schema, self.table) if self.direct else sql.Identifier(STAGE)
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            into, sql.SQL(", ").join(sql.Identifier(n) for n in columns)
        )
        return statement.as_string(self.conn)

    def end_copy(self) -> None:
        """Finish the running COPY, if any: the connection is free again afterwards.

        Raises the driver's error when the server rejected the data.
        """
        copy, self._copy = self._copy, None
        if copy is not None:
            copy.finish()

    def stop_copy(self) -> bool:
        """Abort the running COPY, if any. True when the connection is free again."""
        copy, self._copy = self._copy, None
        return copy.abort() if copy is not None else True

    # -- commit ----------------------------------------------------------------------------
    def publish(self, record: CommitRecord) -> None:
        """Everything ``commit`` does before the COMMIT itself (the caller commits).

        ``record`` is written in the same transaction as the rows: both commit, or neither.
        """
        self.end_copy()
        if self.statement_timeout:
            self._set_statement_timeout(f"{int(self.statement_timeout * 1000)}")
        with self.conn.cursor() as cur:
            if self.arrow_schema is not None:
                if not self.direct:  # direct writes went into the target already
                    self._ensure_table(cur)
                    self._move_rows(cur)
            elif self.mode == "overwrite" and self.existing is not None:
                self._empty_target(cur)
            write_commit_record(cur, record)

    def _set_statement_timeout(self, milliseconds: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (milliseconds,))

    def _empty_target(self, cur: Any) -> None:
        """Remove the target's rows for an overwrite, inside the run's transaction.

        ``truncate`` (the default) costs nothing per row and leaves no dead rows for VACUUM; its
        lock makes other sessions wait for the table until COMMIT (they never see it empty or
        half loaded). ``delete`` lets them keep reading the old rows meanwhile, at the cost of
        deleting every row (2M rows: ~1.5 s of server time) and of the dead rows it leaves. A
        table that another table's foreign key references, or that the role may not truncate, is
        emptied with DELETE whatever the setting: TRUNCATE would fail there.
        """
        if self.overwrite_method == "truncate":
            cur.execute(_TRUNCATABLE, (self.schema, self.table))
            row = cur.fetchone()
            if row is not None and row[0]:
                cur.execute(self._sql("TRUNCATE {target}"))
                return
        cur.execute(self._sql("DELETE FROM {target}"))

    def _sql(self, template: str, **parts: Any) -> Any:
        from psycopg2 import sql

        return sql.SQL(template).format(
            target=sql.Identifier(self.schema, self.table), stage=sql.Identifier(STAGE), **parts
        )

    def _ensure_table(self, cur: Any) -> None:
        from psycopg2 import sql

        if self.existing is None:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            definitions = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type))
                for name, pg_type in self.column_types.items()
            )
            cur.execute(self._sql("CREATE TABLE {target} ({columns})", columns=definitions))
            return
        for name, pg_type in self.widen.items():
            if name in self.existing:
                cur.execute(
                    self._sql("ALTER TABLE {target} ALTER COLUMN {column} TYPE {type}", column=sql.Identifier(name),
                              type=sql.SQL(pg_type))
                )
        for name, pg_type in self.column_types.items():
            if name not in self.existing:
                cur.execute(
                    self._sql("ALTER TABLE {target} ADD COLUMN {column} {type}", column=sql.Identifier(name),
                              type=sql.SQL(pg_type))
                )

    def _move_rows(self, cur: Any) -> None:
        from psycopg2 import sql

        columns = sql.SQL(", ").join(sql.Identifier(n) for n in self.column_types)
        if self.mode == "overwrite":
            self._empty_target(cur)
        if self.mode != "merge":
            cur.execute(self._sql("INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage}", columns=columns))
            return
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.merge_keys)
        latest = self._sql(
            "SELECT DISTINCT ON ({keys}) {columns} FROM {stage} ORDER BY {keys}, {seq} DESC",
            keys=keys,
            columns=columns,
            seq=sql.Identifier(SEQ),
        )
        if self._has_unique_constraint(cur):
            others = [n for n in self.column_types if n not in self.merge_keys]
            action = (
                sql.SQL("DO UPDATE SET ")
                + sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in others)
                if others
                else sql.SQL("DO NOTHING")
            )
            cur.execute(
                self._sql(
                    "INSERT INTO {target} ({columns}) {latest} ON CONFLICT ({keys}) {action}",
                    columns=columns,
                    latest=latest,
                    keys=keys,
                    action=action,
                )
            )
            return
        matches = sql.SQL(" AND ").join(
            sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in self.merge_keys
        )
        cur.execute(
            self._sql(
                "DELETE FROM {target} AS t USING (SELECT DISTINCT {keys} FROM {stage}) AS s WHERE {matches}",
                keys=keys,
                matches=matches,
            )
        )
        cur.execute(self._sql("INSERT INTO {target} ({columns}) {latest}", columns=columns, latest=latest))

    def _has_unique_constraint(self, cur: Any) -> bool:
        if self.existing is None:
            return False
        cur.execute(_UNIQUE_KEYS, (self.schema, self.table))
        wanted = sorted(self.merge_keys)
        return any(list(row[0]) == wanted for row in cur.fetchall())


def commit_record_table() -> CommitRecordTable:
    """The commit-record table, ``public._dataloader_state``, in PostgreSQL's dialect.

    Tables created by older versions (``state jsonb``, ``committed_at timestamptz``, a primary key)
    keep working: psycopg2 sends the parameters as untyped literals, which the server casts to the
    column's type, and a ``jsonb`` value reads back as a dict.
    """
    schema, name = STATE_TABLE
    return CommitRecordTable(f'"{schema}"."{name}"', paramstyle="format", text_type="text")


def write_commit_record(cur: Any, record: CommitRecord) -> None:
    """Replace the recipe's commit record inside the caller's open transaction."""
    table = commit_record_table()
    cur.execute("SELECT to_regclass(%s)", (table.name,))
    if cur.fetchone()[0] is None:
        # Two recipes' first commits at once would race on CREATE TABLE IF NOT EXISTS (a
        # duplicate pg_type row); a lock held until this transaction ends makes them take turns.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_STATE_TABLE_LOCK,))
        cur.execute(table.create_sql())
    for statement, params in table.write_statements(record):
        cur.execute(statement, params)


def read_commit_record(cur: Any, recipe_name: str) -> CommitRecord | None:
    """The recipe's committed record (also one written by older versions), or None."""
    table = commit_record_table()
    cur.execute("SELECT to_regclass(%s)", (table.name,))
    if cur.fetchone()[0] is None:
        return None
    statement, params = table.read_statement(recipe_name)
    cur.execute(statement, params)
    return table.parse(recipe_name, cur.fetchone())
