"""One run's write into a DuckDB table: a staging table inside one transaction.

``begin`` opens the transaction and creates the staging table (in the database's default schema,
under a name unique to the run; every name is spelled out with its catalog, see ``names``); ``write`` appends each Arrow batch to it with ``INSERT ... SELECT`` over
the Arrow buffers (DuckDB copies the columns, Python never touches a row); ``commit`` shapes
the target (create it, add new columns, widen columns), moves the staged rows in with the write
mode, writes the run's commit record (the core's ``CommitRecordTable``), drops the staging table and commits.

``append`` and ``overwrite`` of batches whose column types are all known go straight into the target
instead (``overwrite`` deletes the old rows first, in the same transaction): no second copy of the
rows, and the same isolation, because the transaction is what hides them.

Everything happens inside the one transaction, so other connections see the table as it was until
``COMMIT``, and a failure (``abort`` rolls back) or a killed process (DuckDB's write-ahead log never
holds an uncommitted transaction) leaves the table, and the database, exactly as before. Even the
staging table never becomes visible to anyone else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dataloader.config import check_merge_keys
from dataloader.errors import ConnectorError
from dataloader.handoff import END, Handoff
from dataloader.run.ledger import CommitRecord, CommitRecordTable

from dataloader_duckdb.names import TableName, quote_ident
from dataloader_duckdb.types import NULL_TYPE, is_null_type, reconcile

#: Order of the staged rows, so that a merge can keep the last row of each key.
SEQ_COLUMN = "_dataloader_seq"
#: The commit record table (``_dataloader_state``) lives in the ``main`` schema of the destination's catalog.
RECORD_SCHEMA = "main"
#: Batches queued for the running INSERT: enough to keep DuckDB busy, few enough to keep memory flat.
STREAM_DEPTH = 2


@dataclass
class Column:
    name: str
    type: str


class StagedLoad:
    """Created per run by the destination connector; see the module docstring."""

    def __init__(
        self,
        con: Any,
        target: TableName,
        mode: str,
        merge_keys: list[str],
        memory: MemoryLimit | None = None,
        *,
        scratch_schema: str = "main",
    ) -> None:
        """``target`` is fully qualified (:func:`qualify`); the staging table goes to ``scratch_schema``."""
        self.con = con
        self.scratch_schema = scratch_schema
        self.memory = memory
        self.target = target
        self.mode = mode
        self.merge_keys = list(merge_keys)
        self.stage: TableName | None = None
        self.layout: list[Column] = []  # the staging table's columns, in table order
        self.rows = 0
        self.active = False
        #: Rows go straight into the target (append/overwrite with every column type known).
        self.direct = False
        #: The INSERT running on a helper thread, fed the batches of one shape.
        self.stream: _InsertStream | None = None

    # -- begin ----------------------------------------------------------------------------
    def begin(self, schema: pa.Schema | None) -> None:
        self.con.execute("BEGIN TRANSACTION")
        self.active = True
        if schema is not None:
            self._create_stage(schema)
            self._check_against_target()
            self._go_direct()

    def _go_direct(self) -> None:
        """Shape the target now and write into it, when nothing about the rows is undecided."""
        if self.mode not in ("append", "overwrite") or any(is_null_type(c.type) for c in self.layout):
            return
        self._shape_target(list(self.stage_columns.values()))
        if self.mode == "overwrite":
            self.con.execute(f"DELETE FROM {self.target.sql}")
        self.direct = True

    def _create_stage(self, schema: pa.Schema) -> None:
        refuse_unstorable(schema, self.target)
        _refuse_duplicate_names(schema.names, self.target)
        if self.mode == "merge":
            self._check_merge_keys(schema.names)
        # In the target's catalog and the connection's default schema, under a name unique to the run.
        self.stage = TableName(f"_dataloader_stage_{uuid.uuid4().hex[:12]}", self.scratch_schema, self.target.catalog)
        empty = pa.Table.from_batches([], schema=self._with_seq(schema))
        _ArrowRows(self.con, empty).run(f"CREATE TABLE {self.stage.sql} AS SELECT * FROM {{rows}} LIMIT 0")
        # Arrow ``null`` columns stay undecided: DuckDB versions differ in the type they give them.
        undecided = {field.name for field in empty.schema if pa.types.is_null(field.type)}
        self.layout = [Column(c.name, NULL_TYPE) if c.name in undecided else c for c in self._columns_of(self.stage)]

    def _check_merge_keys(self, names: list[str]) -> None:
        check_merge_keys("merge", self.merge_keys, table=str(self.target))
        present = {name.lower() for name in names}
        missing = [key for key in self.merge_keys if key.lower() not in present]
        if missing:
            raise ConnectorError(
                f"merge key column(s) {', '.join(missing)} are not in the rows loaded into {self.target}; "
                f"columns: {', '.join(names)}",
                table=str(self.target),
                columns=missing,
            )

    # -- write ----------------------------------------------------------------------------
    def write(self, data: pa.RecordBatch) -> None:
        """Hand the batch to the running INSERT (starting one first when there is none)."""
        if data.num_rows == 0:
            return
        if self.stream is not None and not data.schema.equals(self.stream.schema):
            refuse_unstorable(data.schema, self.target)  # before the running INSERT takes anything more
            self.flush()  # a batch of another shape: finish this INSERT, shape the tables again
        if self.memory is not None:
            self.memory.fit(data.nbytes, data.num_columns + (self.mode == "merge"))
        if self.stream is None:
            self._start_stream(data.schema)
        self.stream.put(self._with_seq(data.schema, data))
        self.rows += data.num_rows

    def flush(self) -> None:
        """Finish the running INSERT: wait until DuckDB has taken every batch, raise its error."""
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.finish()

    def _start_stream(self, schema: pa.Schema) -> None:
        """Shape the tables for batches of ``schema`` and start one INSERT that takes all of them."""
        if self.stage is None:
            self._create_stage(schema)
            self._check_against_target()
            self._go_direct()
        stream = _InsertStream(schema)
        rows = _ArrowRows(self.con, stream.reader(self._with_seq(schema)))
        if self.direct:
            statement = self._direct_statement(rows)
        else:
            self._grow_stage(rows, schema.names)
            statement = rows.insert_statement(self.stage, self.layout)
        stream.start(lambda: rows.run(statement))
        self.stream = stream

    def _direct_statement(self, rows: _ArrowRows) -> str:
        staged = self.stage_columns
        new = [c for c in rows.columns() if c.name.lower() not in staged and not is_null_type(c.type)]
        if new:  # a later batch grew a column: add it to the target, nullable
            _refuse_duplicate_names([c.name for c in rows.columns()], self.target)
            self._shape_target(new)
            self.layout.extend(new)
        target = self._target_columns() or {}
        layout = [target.get(c.name.lower(), c) for c in self.layout]
        return rows.insert_statement(self.target, layout)

    def _with_seq(self, schema: pa.Schema, data: pa.Table | pa.RecordBatch | None = None) -> Any:
        """Add the staging order column (merge only): ``rows + 1 ... rows + n``, built by Arrow."""
        if self.mode != "merge":
            return data if data is not None else schema
        if data is None:
            return schema.append(pa.field(SEQ_COLUMN, pa.int64()))
        import pyarrow.compute as pc  # here, not at the top: a plain load never needs it (~50 ms to import)

        ones = pa.repeat(pa.scalar(1, pa.int64()), data.num_rows)
        seq = pc.add(pc.cumulative_sum(ones), pa.scalar(self.rows, pa.int64()))
        return data.append_column(SEQ_COLUMN, seq)

    @property
    def stage_columns(self) -> dict[str, Column]:
        """The staged data columns by lower-cased name (DuckDB names are case-insensitive)."""
        return {column.name.lower(): column for column in self.layout if column.name != SEQ_COLUMN}

    def _grow_stage(self, rows: _ArrowRows, names: list[str]) -> None:
        """A later batch may bring a column the first did not have, or values where it had only NULLs."""
        staged = self.stage_columns
        undecided = any(is_null_type(c.type) for c in staged.values())
        if not undecided and all(name.lower() in staged for name in names):
            return
        _refuse_duplicate_names(names, self.target)
        for column in rows.columns():
            current = staged.get(column.name.lower())
            only_nulls = is_null_type(column.type)
            if column.name == SEQ_COLUMN or (current is not None and (only_nulls or not is_null_type(current.type))):
                continue
            if current is None:
                physical = "VARCHAR" if only_nulls else column.type
                self.con.execute(f"ALTER TABLE {self.stage.sql} ADD COLUMN {quote_ident(column.name)} {physical}")
                self.layout.append(column)
            else:
                self.con.execute(
                    f"ALTER TABLE {self.stage.sql} ALTER COLUMN {quote_ident(current.name)} SET DATA TYPE {column.type}"
                )
                current.type = column.type

    # -- commit ---------------------------------------------------------------------------
    def commit(self, record: CommitRecord) -> None:
        """Publish the staged rows and write ``record``, then ``COMMIT``: one transaction."""
        self.flush()
        try:
            if self.stage is not None:
                if not self.direct:
                    if self.mode == "merge" and self.memory is not None:
                        self.memory.lift()
                    self._publish()
                self.con.execute(f"DROP TABLE {self.stage.sql}")
            elif self.mode == "overwrite" and self._target_columns() is not None:
                # The source produced no rows: an overwrite leaves the table empty, like any other overwrite.
                self.con.execute(f"DELETE FROM {self.target.sql}")
            write_record(self.con, self.target.catalog, record, memory=self.memory)
            if self.memory is not None:
                self.memory.lift()  # COMMIT may checkpoint, which holds blocks of every column at once
            self.con.execute("COMMIT")
            self.active = False
        finally:
            if self.memory is not None:
                self.memory.restore()

    def _publish(self) -> None:
        columns = list(self.stage_columns.values())
        self._shape_target(columns)
        into = f"INSERT INTO {self.target.sql} ({', '.join(quote_ident(c.name) for c in columns)})"
        # An undecided column holds only NULLs, in whatever type the staging table gave it.
        names = ", ".join("NULL" if is_null_type(c.type) else quote_ident(c.name) for c in columns)
        if self.mode == "overwrite":
            self.con.execute(f"DELETE FROM {self.target.sql}")
        if self.mode != "merge":
            self.con.execute(f"{into} SELECT {names} FROM {self.stage.sql}")
            return
        keys = [quote_ident(self.stage_columns[k.lower()].name) for k in self.merge_keys]
        match = " AND ".join(f"t.{key} IS NOT DISTINCT FROM s.{key}" for key in keys)
        self.con.execute(
            f"DELETE FROM {self.target.sql} AS t WHERE EXISTS (SELECT 1 FROM {self.stage.sql} AS s WHERE {match})"
        )
        # The last staged row of each key wins: the highest staging sequence per key. (A grouped
        # max needs less memory than ranking every row with a window: 2M rows, ~420 vs ~540 MiB.)
        seq = quote_ident(SEQ_COLUMN)
        self.con.execute(
            f"{into} SELECT {names} FROM {self.stage.sql} WHERE {seq} IN "
            f"(SELECT max({seq}) FROM {self.stage.sql} GROUP BY {', '.join(keys)})"
        )

    def _shape_target(self, columns: list[Column]) -> None:
        """Create the target, or add new columns to it and widen columns that need it."""
        existing = self._target_columns()
        if existing is None:
            if self.target.schema is not None:
                schema = TableName(self.target.schema, self.target.catalog)  # "catalog"."schema"
                self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema.sql}")
            definition = ", ".join(f"{quote_ident(c.name)} {_storable(c.type)}" for c in columns)
            self.con.execute(f"CREATE TABLE {self.target.sql} ({definition})")
            return
        for column, widened in self._plan_changes(existing, columns):
            name = quote_ident(column.name)
            if widened is None:
                self.con.execute(f"ALTER TABLE {self.target.sql} ADD COLUMN {name} {_storable(column.type)}")
            else:
                self.con.execute(f"ALTER TABLE {self.target.sql} ALTER COLUMN {name} SET DATA TYPE {widened}")

    def _check_against_target(self) -> None:
        existing = self._target_columns()
        if existing is not None:
            self._plan_changes(existing, list(self.stage_columns.values()))

    def _plan_changes(self, existing: dict[str, Column], columns: list[Column]) -> list[tuple[Column, str | None]]:
        """``(column, None)`` to add it, ``(column, type)`` to widen it; refuses incompatible types."""
        conflicts = type_conflicts(self.target, existing, columns)
        if conflicts:
            raise conflicts[0]
        changes: list[tuple[Column, str | None]] = []
        for column in columns:
            current = existing.get(column.name.lower())
            if current is None:
                changes.append((column, None))
                continue
            needed = reconcile(current.type, column.type)
            if needed is not None and needed != current.type:
                changes.append((Column(current.name, current.type), needed))
        return changes

    # -- abort ----------------------------------------------------------------------------
    def abort(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.cancel()
        if self.memory is not None:
            self.memory.restore()
        if not self.active:
            return
        self.active = False
        try:
            self.con.execute("ROLLBACK")
        except Exception as exc:
            # A failed COMMIT has already rolled the transaction back; there is nothing left to undo.
            if "no transaction" not in str(exc).lower():
                raise

    # -- catalog helpers ------------------------------------------------------------------
    def _target_columns(self) -> dict[str, Column] | None:
        return table_columns(self.con, self.target)

    def _columns_of(self, table: TableName) -> list[Column]:
        return self._columns_of_query(f"SELECT * FROM {table.sql}")

    def _columns_of_query(self, sql: str) -> list[Column]:
        return [Column(row[0], row[1]) for row in self.con.execute(f"DESCRIBE {sql}").fetchall()]


class _ArrowRows:
    """Runs SQL over an Arrow object, named ``_dataloader_batch`` inside the statement.

    The rows reach DuckDB through ``from_arrow`` (a relation over the Arrow buffers, no copy through
    Python). A view made with ``register`` would do the same, but a view is a catalog entry, and
    inside an open transaction DuckDB keeps every dropped catalog entry (and the batch it points
    to) until the transaction ends: staging two million rows that way held all of them in memory.
    """

    alias = "_dataloader_batch"

    def __init__(self, con: Any, data: pa.Table | pa.RecordBatch) -> None:
        self.schema = data.schema
        self.relation = con.from_arrow(data)

    def columns(self) -> list[Column]:
        """DuckDB's types for the rows; a column of Arrow's ``null`` type is undecided (``NULL_TYPE``)."""
        return [
            Column(field.name, NULL_TYPE if pa.types.is_null(field.type) else str(type_))
            for field, type_ in zip(self.schema, self.relation.types, strict=True)
        ]

    def run(self, sql: str) -> None:
        """Execute ``sql``, in which ``{rows}`` stands for the Arrow rows (for DDL: it holds on to them)."""
        self.relation.query(self.alias, sql.format(rows=quote_ident(self.alias)))

    def insert_statement(self, table: TableName, layout: list[Column]) -> str:
        """``INSERT`` of the rows into ``table``, column by column of ``layout``, for :meth:`run`.

        Columns are matched by name, case-insensitively; one the rows lack is NULL.
        """
        present = {name.lower(): name for name in self.relation.columns}
        names = ", ".join(quote_ident(column.name) for column in layout)
        select = ", ".join(
            quote_ident(present[column.name.lower()]) if column.name.lower() in present
            else ("NULL" if is_null_type(column.type) else f"CAST(NULL AS {column.type})")
            for column in layout
        )
        return f"INSERT INTO {table.sql} ({names}) SELECT {select} FROM {{rows}}"


class MemoryLimit:
    """DuckDB's ``memory_limit`` for a destination: small while rows stream in, never too small.

    A small limit keeps a long load's memory flat (DuckDB spills the uncommitted rows to its temp
    directory), but some things DuckDB cannot spill, so the limit is raised (never lowered) to fit:

    - a whole value sits in one block: a single 50 MB text failed in a 64 MB limit with "could not
      allocate block", hence ``HEADROOM`` times the largest batch;
    - an insert keeps one 256 KiB block per column and thread pinned: 300 columns failed under
      128 MB on 2 threads, hence ``(threads + 1) * columns * BLOCK`` plus ``BASE``.

    With ``lifts`` (the recipe's ``memory_limit: auto``), :meth:`lift` hands the whole machine to
    DuckDB (its own default, 80 % of RAM) for a merge's publish step: deleting the matched keys and
    keeping the last row of each staged key builds hash tables over every staged key, which failed
    under 48 MB at 2M keys. :meth:`restore` puts the load's limit back for the next checkpoint.

    The setting is global to the database and is set through a connection of its own, because the
    load's connection may be busy with an insert on another thread.
    """

    HEADROOM = 4
    BLOCK = 256 * 1024
    BASE = 16 * 1024**2
    _UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
              "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}

    def __init__(self, con: Any, limit: str, *, lifts: bool = False) -> None:
        self.bytes = self.parse(limit)
        self.lifts = lifts
        self.lifted = False
        self.con = con.cursor() if self.bytes is not None else None
        self.threads = 1
        if self.con is None:  # a form DuckDB reads and this class does not ("75%"?): set as written
            con.execute("SET memory_limit = '{}'".format(limit.replace("'", "''")))
        else:
            self.con.execute(f"SET memory_limit = '{self.bytes}B'")
            self.threads = int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])

    @classmethod
    def parse(cls, text: str) -> int | None:
        """Bytes in ``64MB``, ``1.5 GiB``...; None for what DuckDB understands and this does not."""
        number = text.strip().lower().rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
        unit = text.strip().lower()[len(number):].strip()
        try:
            return int(float(number) * cls._UNITS[unit])
        except (KeyError, ValueError):
            return None

    def fit(self, batch_bytes: int, columns: int = 0) -> None:
        """Raise the limit to what a batch of ``batch_bytes`` in ``columns`` columns needs."""
        needed = max(self.HEADROOM * batch_bytes, (self.threads + 1) * columns * self.BLOCK + self.BASE)
        if self.con is None or self.bytes is None or needed <= self.bytes:
            return
        self.bytes = needed
        if not self.lifted:
            self.con.execute(f"SET memory_limit = '{needed}B'")

    def lift(self) -> None:
        """DuckDB's own default limit, for a step that must hold every staged key (``auto`` only)."""
        if self.lifts and self.con is not None and not self.lifted:
            self.con.execute("RESET memory_limit")
            self.lifted = True

    def restore(self) -> None:
        if self.lifted and self.con is not None:
            self.con.execute(f"SET memory_limit = '{self.bytes}B'")
        self.lifted = False

    def close(self) -> None:
        if self.con is not None:
            con, self.con = self.con, None
            con.close()


class _InsertStream(Handoff):
    """One ``INSERT ... SELECT`` over a stream of Arrow batches, run by DuckDB on a helper thread.

    The caller ``put``s batches into a small bounded queue; DuckDB pulls them through a
    ``RecordBatchReader`` and inserts them with all its threads while the caller prepares the next
    batch. One statement per run instead of one per batch is what lets DuckDB parallelise the insert
    (2M rows: ~1.4 s, against ~2.0 s for one statement per 100k rows on 2 cores). The connection
    belongs to the helper thread until ``finish`` or ``cancel`` returns.
    """

    def __init__(self, schema: pa.Schema) -> None:
        super().__init__(
            STREAM_DEPTH, name="dataloader-duckdb-insert", ended_early="the DuckDB insert ended before its rows did"
        )
        self.schema = schema

    def reader(self, schema: pa.Schema) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            while (item := self.get()) is not END:  # a cancel raises here, and DuckDB fails the statement
                yield item

        return pa.RecordBatchReader.from_batches(schema, batches())


def home(con: Any) -> tuple[str, str]:
    """The connection's catalog (named after the database file) and its default schema."""
    catalog, schema = con.execute("SELECT current_database(), current_schema()").fetchall()[0]
    return catalog, schema


def table_columns(con: Any, table: TableName) -> dict[str, Column] | None:
    """A table's columns by lower-cased name, or None when there is no such table (``table`` qualified)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?) "
        "ORDER BY column_index",
        [table.catalog, table.schema, table.name],
    ).fetchall()
    if not rows:
        return None
    return {name.lower(): Column(name, type_name) for name, type_name in rows}


def arrow_columns(con: Any, schema: pa.Schema) -> list[Column]:
    """DuckDB's types for an Arrow schema (a column of Arrow's ``null`` type is undecided)."""
    return _ArrowRows(con, pa.Table.from_batches([], schema=schema)).columns()


def type_conflicts(target: TableName, existing: dict[str, Column], columns: list[Column]) -> list[ConnectorError]:
    """One error per loaded column whose type the table's column cannot take (see ``types``)."""
    conflicts = []
    for column in columns:
        current = existing.get(column.name.lower())
        if current is not None and reconcile(current.type, column.type) is None:
            conflicts.append(
                ConnectorError(
                    f"column {current.name!r} of {target} is {current.type} but the rows being loaded have "
                    f"{column.type}; cast it in the recipe (a 'cast' transform step) or load into a new table",
                    table=str(target),
                    column=current.name,
                    existing_type=current.type,
                    incoming_type=column.type,
                )
            )
    return conflicts


def unstorable_columns(schema: pa.Schema, target: TableName) -> list[ConnectorError]:
    """One error per column of an Arrow type DuckDB cannot take (``decimal256``, also inside a list or struct).

    DuckDB's ``DECIMAL`` holds at most 38 digits, and its Arrow import refuses ``decimal256``
    outright, even at a precision that would fit; the error names the column and the cast to add.
    """
    errors = []
    for field in schema:
        found = _find_decimal256(field.type)
        if found is not None:
            precision, scale = found
            errors.append(
                ConnectorError(
                    f"column {field.name!r} is decimal256({precision}, {scale}), which DuckDB cannot store "
                    f"(its DECIMAL holds at most 38 digits); nothing was written to {target}: add a 'cast' "
                    f"transform step, {{{field.name}: 'decimal(38,{min(scale, 38)})'}} if its values fit in "
                    f"38 digits, or {{{field.name}: string}} to keep every digit",
                    table=str(target),
                    column=field.name,
                    type=str(field.type),
                )
            )
    return errors


def refuse_unstorable(schema: pa.Schema, target: TableName) -> None:
    errors = unstorable_columns(schema, target)
    if errors:
        raise errors[0]


def _find_decimal256(type_: pa.DataType) -> tuple[int, int] | None:
    if pa.types.is_decimal256(type_):
        return type_.precision, type_.scale
    children = [type_.field(i).type for i in range(type_.num_fields)] if type_.num_fields else []
    for child in children:
        found = _find_decimal256(child)
        if found is not None:
            return found
    return None


def _storable(type_name: str) -> str:
    """A column type for the table: a column that was NULL in every staged row becomes VARCHAR."""
    return "VARCHAR" if is_null_type(type_name) else type_name


def _refuse_duplicate_names(names: list[str], target: TableName) -> None:
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name or names.count(name) > 1:
            raise ConnectorError(
                f"columns {other!r} and {name!r} differ only in case; DuckDB (and so {target}) "
                "treats them as one column: rename one in the recipe",
                table=str(target),
                column=name,
            )


# -- the commit record -------------------------------------------------------------------------
def record_table(catalog: str) -> CommitRecordTable:
    """The core's ``_dataloader_state`` SQL for ``"catalog"."main"."_dataloader_state"``."""
    return CommitRecordTable(TableName(CommitRecordTable.TABLE, RECORD_SCHEMA, catalog).sql, paramstyle="qmark")


def write_record(con: Any, catalog: str, record: CommitRecord, memory: MemoryLimit | None = None) -> None:
    """Replace the recipe's commit record, inside the caller's transaction.

    A table made by older versions (``committed_at TIMESTAMP WITH TIME ZONE``) is written as it
    is: DuckDB casts the record's ISO text to the column's type.
    """
    table = record_table(catalog)
    if memory is not None:
        memory.fit(len(record.to_json()))  # one value, one block: a big state needs a limit to match
    con.execute(table.create_sql())
    for sql, params in table.write_statements(record):
        con.execute(sql, list(params))


def read_record(con: Any, recipe_name: str) -> CommitRecord | None:
    """The committed record of ``recipe_name`` in the connection's own catalog, or None.

    Also reads what older versions stored (the bare state as JSON, the run id beside it).
    """
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
        [catalog, RECORD_SCHEMA, CommitRecordTable.TABLE],
    ).fetchall()[0][0]
    if not exists:
        return None
    table = record_table(catalog)
    sql, params = table.read_statement(recipe_name)
    rows = con.execute(sql, list(params)).fetchall()
    return table.parse(recipe_name, rows[0] if rows else None)


__all__ = [
    "SEQ_COLUMN",
    "RECORD_SCHEMA",
    "Column",
    "StagedLoad",
    "arrow_columns",
    "home",
    "read_record",
    "record_table",
    "write_record",
    "table_columns",
    "type_conflicts",
    "unstorable_columns",
]
