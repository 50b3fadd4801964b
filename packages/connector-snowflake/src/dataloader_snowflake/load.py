"""One write to a Snowflake table: Parquet parts on a stage, then one transaction.

The order of a write, and why::

    prepare    DDL, each statement committing on its own (Snowflake commits DDL implicitly, so
               none of it may run inside the transaction below): the schema, the stage, the
               target table, the commit-record table and, for overwrite and merge, a TRANSIENT
               staging table typed like the target
    write      batches -> Parquet parts -> PUT @stage/<prefix>/ (the prefix is unique to this write)
    publish    overwrite/merge: COPY INTO the staging table (private to this write), then
               BEGIN
                 append:    COPY INTO target ... MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE
                 overwrite: DELETE FROM target; INSERT INTO target SELECT ... FROM staging
                 merge:     MERGE INTO target USING (staging, last row per key: QUALIFY) ...
                 the commit record (DELETE + INSERT into _dataloader_state)
               COMMIT
    cleanup    after COMMIT or on abort: REMOVE the stage prefix, DROP the staging table

Overwrite empties and refills the target inside the transaction rather than swapping tables
(``ALTER TABLE ... SWAP WITH`` is DDL: it would commit on its own, apart from the commit record).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
from dataloader.errors import ConnectorError

from dataloader_snowflake.names import TableName, quote
from dataloader_snowflake.parts import SEQ, PartWriter
from dataloader_snowflake.types import SEMI_STRUCTURED, column_ddl

log = logging.getLogger("dataloader.snowflake")

STATE_TABLE = "_dataloader_state"


def describe_columns(run: Any, table: TableName) -> list[tuple[str, str]] | None:
    """``(name, type)`` of each column of ``table`` in order, or None if it does not exist.

    The type is INFORMATION_SCHEMA's DATA_TYPE with a NUMBER's precision and scale, ready for a cast.
    """
    assert table.database and table.schema
    rows = run(
        "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
        f"FROM {quote(table.database)}.INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (table.schema, table.table),
        f"read the columns of table {table.display()}",
    )
    if not rows:
        return None
    columns = []
    for name, kind, precision, scale in rows:
        kind = {"TEXT": "VARCHAR", "FIXED": "NUMBER"}.get(str(kind).upper(), str(kind).upper())
        if kind == "NUMBER" and precision is not None:
            kind = f"NUMBER({int(precision)},{int(scale or 0)})"
        columns.append((str(name), kind))
    return columns


class StagedLoad:
    """Everything one ``begin()`` … ``commit()``/``abort()`` of the destination does."""

    def __init__(
        self,
        run: Any,
        target: TableName,
        mode: str,
        merge_keys: list[str],
        *,
        stage: str,
        prefix: str,
        part_bytes: int,
        variant_columns: list[str],
    ) -> None:
        self._run = run  # run(sql, params, doing) -> rows; translates driver errors
        self.target = target
        self.mode = mode
        self.merge_keys = merge_keys
        self.stage = target.sibling(stage)
        self.prefix = prefix
        self.variant_columns = set(variant_columns)
        self.staging = target.sibling(f"{target.table}__dl_{uuid.uuid4().hex[:12]}") if mode != "append" else None
        self.arrow_schema: pa.Schema | None = None
        self.columns: list[tuple[str, str]] = []  # the target's, after prepare()
        self.load_columns: list[str] = []  # the target's names of the batch's columns, in batch order
        self._parts = PartWriter(self._put, part_bytes, numbered=mode == "merge")
        self.staging_created = False
        self.in_transaction = False
        self.committed = False

    @property
    def label(self) -> str:
        return f"table {self.target.display()}"

    @property
    def rows(self) -> int:
        return self._parts.rows

    def _location(self) -> str:
        return f"@{self.stage.sql()}/{self.prefix}/"

    # -- before BEGIN --------------------------------------------------------------------------
    def prepare(self, arrow_schema: pa.Schema | None, record_table: Any) -> None:
        self.arrow_schema = arrow_schema
        schema_sql = self.target.schema_sql()
        found = self._run(
            f"SELECT COUNT(*) FROM {quote(self.target.database or '')}.INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME = ?",
            (self.target.schema,),
            f"look for schema {schema_sql}",
        )
        if not found or not found[0][0]:  # creating only when missing: a role may use a schema it may not create
            self._run(f"CREATE SCHEMA IF NOT EXISTS {schema_sql}", None, f"create schema {schema_sql}")
        self._run(record_table.create_sql(), None, "create the commit-record table")
        existing = describe_columns(self._run, self.target)
        if arrow_schema is None:
            self.columns = existing or []
            return
        self._check_merge_keys(arrow_schema)
        if existing is None:
            definitions = ", ".join(column_ddl(f, f.name in self.variant_columns) for f in self._typed(arrow_schema))
            self._run(f"CREATE TABLE IF NOT EXISTS {self.target.sql()} ({definitions})", None, f"create {self.label}")
            existing = describe_columns(self._run, self.target) or []
        self.columns = existing
        self.load_columns = self._match_columns(arrow_schema)
        self._run(f"CREATE STAGE IF NOT EXISTS {self.stage.sql()}", None, f"create stage {self.stage.display()}")
        if self.staging is not None:
            self._run(
                f"CREATE TRANSIENT TABLE {self.staging.sql()} LIKE {self.target.sql()}",
                None,
                f"create the staging table for {self.label}",
            )
            self.staging_created = True
            if self.mode == "merge":
                self._run(
                    f"ALTER TABLE {self.staging.sql()} ADD COLUMN {quote(SEQ)} NUMBER(19,0)",
                    None,
                    f"prepare the staging table for {self.label}",
                )

    @staticmethod
    def _typed(arrow_schema: pa.Schema) -> list[pa.Field]:
        try:
            from dataloader_snowflake.types import snowflake_type

            for f in arrow_schema:
                snowflake_type(f.type)
        except ValueError as exc:
            raise ConnectorError(f"column {f.name!r}: {exc}", column=f.name) from None
        return list(arrow_schema)

    def _check_merge_keys(self, arrow_schema: pa.Schema) -> None:
        if self.mode != "merge":
            return
        missing = [k for k in self.merge_keys if k not in arrow_schema.names]
        if missing:
            raise ConnectorError(
                f"merge_keys {', '.join(missing)} not among the loaded columns ({', '.join(arrow_schema.names)})",
                column=missing[0],
            )

    def _match_columns(self, arrow_schema: pa.Schema) -> list[str]:
        """The target's name of each batch column: the same name, else the one equal ignoring case."""
        names = [name for name, _ in self.columns]
        matched, unknown = [], []
        for name in arrow_schema.names:
            if name in names:
                matched.append(name)
                continue
            folded = [n for n in names if n.upper() == name.upper()]
            if len(folded) == 1:
                matched.append(folded[0])
            else:
                unknown.append(name)
        if unknown:
            raise ConnectorError(
                f"{self.label} has no column {', '.join(repr(u) for u in unknown)} "
                f"(its columns: {', '.join(names)}); add the column or drop it with a transform step",
                column=unknown[0],
            )
        return matched

    # -- writing -------------------------------------------------------------------------------
    def write(self, batch: pa.RecordBatch) -> None:
        self._parts.write(batch)

    def _put(self, path: Path) -> None:
        # AUTO_COMPRESS=FALSE: Parquet is compressed already. OVERWRITE: a retried upload replaces a half one.
        uri = path.resolve().as_uri().replace("'", "\\'")
        self._run(
            f"PUT '{uri}' {self._location()} AUTO_COMPRESS=FALSE OVERWRITE=TRUE",
            None,
            f"upload {path.name} to stage {self.stage.display()}",
        )

    # -- the transaction -----------------------------------------------------------------------
    def _json_text_columns(self) -> set[str]:
        """Target columns that are VARIANT/OBJECT/ARRAY and receive text: they need PARSE_JSON.

        A nested Arrow column (list, struct) is a nested Parquet field, which loads as it is.
        """
        if self.arrow_schema is None:
            return set()
        kinds = dict(self.columns)
        return {
            column
            for field, column in zip(self.arrow_schema, self.load_columns, strict=True)
            if kinds.get(column) in SEMI_STRUCTURED
            and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
        }

    def _copy_sql(self, into: TableName) -> str:
        semi = self._json_text_columns()
        options = "FILE_FORMAT=(TYPE=PARQUET) PURGE=TRUE"
        if not semi:
            return f"COPY INTO {into.sql()} FROM {self._location()} {options} MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE"
        # A JSON text column for a VARIANT/OBJECT/ARRAY target needs PARSE_JSON, so the whole load
        # becomes a transform: each Parquet field by its (batch) name, cast to the target's type.
        kinds = dict(self.columns)
        source_names = list(self.arrow_schema.names) if self.arrow_schema is not None else []
        pairs = list(zip(source_names, self.load_columns, strict=True))
        if into == self.staging and self.mode == "merge":
            pairs.append((SEQ, SEQ))
            kinds[SEQ] = "NUMBER(19,0)"
        selects = []
        for source, column in pairs:
            field = f"$1:{quote(source)}"
            if column in semi:
                selects.append(f"PARSE_JSON({field}::VARCHAR)")
            else:
                selects.append(f"{field}::{kinds[column]}")
        columns = ", ".join(quote(c) for _, c in pairs)
        return (
            f"COPY INTO {into.sql()} ({columns}) FROM (SELECT {', '.join(selects)} FROM {self._location()}) "
            f"FILE_FORMAT=(TYPE=PARQUET) PURGE=TRUE"
        )

    def _copy(self, into: TableName) -> None:
        rows = self._run(self._copy_sql(into), None, f"load the staged parts into {self.label}")
        loaded = 0
        for row in rows or []:
            # COPY reports one row per file: (file, status, rows_parsed, rows_loaded, ...).
            if len(row) >= 4 and row[1] not in ("LOADED", "PARTIALLY_LOADED"):
                raise ConnectorError(
                    f"COPY INTO {self.label} did not load {row[0]}: {row[1]} {row[6] if len(row) > 6 and row[6] else ''}".rstrip(),
                    file=str(row[0]),
                )
            if len(row) >= 4 and isinstance(row[3], (int, float)):
                loaded += int(row[3])
        if loaded != self.rows:
            raise ConnectorError(
                f"COPY INTO {self.label} loaded {loaded} rows of the {self.rows} written; nothing was committed",
                rows_written=self.rows,
                rows_loaded=loaded,
            )

    def publish(self, record_statements: list[tuple[str, Any]]) -> None:
        """Load, move the rows and write the commit record in one transaction, then COMMIT."""
        self._parts.flush()
        has_rows = self.arrow_schema is not None and self.rows > 0
        if has_rows and self.staging is not None:
            self._copy(self.staging)
        self._run("BEGIN", None, f"start the transaction on {self.label}")
        self.in_transaction = True
        if self.mode == "append":
            if has_rows:
                self._copy(self.target)
        elif self.mode == "overwrite":
            if self.columns:
                self._run(f"DELETE FROM {self.target.sql()}", None, f"empty {self.label} for the overwrite")
            if has_rows:
                self._insert_from_staging()
        elif has_rows:
            self._merge()
        for sql, params in record_statements:
            self._run(sql, params, f"write the commit record next to {self.label}")
        self._run("COMMIT", None, f"commit to {self.label}")
        self.in_transaction = False
        self.committed = True

    def _insert_from_staging(self) -> None:
        assert self.staging is not None
        columns = ", ".join(quote(c) for c in self.load_columns)
        self._run(
            f"INSERT INTO {self.target.sql()} ({columns}) SELECT {columns} FROM {self.staging.sql()}",
            None,
            f"move the rows into {self.label}",
        )

    def merge_sql(self) -> str:
        assert self.staging is not None
        keys = [self.load_columns[self.arrow_schema.names.index(k)] for k in self.merge_keys]  # type: ignore[union-attr]
        columns = ", ".join(quote(c) for c in self.load_columns)
        partition = ", ".join(quote(k) for k in keys)
        source = (
            f"SELECT {columns} FROM {self.staging.sql()} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {quote(SEQ)} DESC) = 1"
        )
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
        updates = [c for c in self.load_columns if c not in keys]
        sql = f"MERGE INTO {self.target.sql()} AS t USING ({source}) AS s ON {on}"
        if updates:
            sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"{quote(c)} = s.{quote(c)}" for c in updates)
        values = ", ".join(f"s.{quote(c)}" for c in self.load_columns)
        return sql + f" WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"

    def _merge(self) -> None:
        self._run(self.merge_sql(), None, f"merge the rows into {self.label}")

    # -- after COMMIT or on abort ----------------------------------------------------------------
    def rollback(self) -> None:
        if self.in_transaction:
            self.in_transaction = False
            self._run("ROLLBACK", None, f"roll back the write to {self.label}")

    def cleanup(self) -> None:
        """Remove what this write left on the stage and the staging table. Best effort: a
        failure here changes nothing the run committed, so it is logged, not raised.

        After a COMMIT the parts are gone already (``COPY … PURGE=TRUE`` removed them); after an
        abort, the parts uploaded so far are removed with ``REMOVE`` on the write's own prefix.
        """
        self._parts.close()
        steps = []
        if self._parts.parts and not self.committed:
            steps.append((f"REMOVE {self._location()}", f"remove the staged parts under {self._location()}"))
        if self.staging is not None and self.staging_created:
            steps.append((f"DROP TABLE IF EXISTS {self.staging.sql()}", f"drop staging table {self.staging.display()}"))
        for sql, doing in steps:
            try:
                self._run(sql, None, doing)
            except ConnectorError as exc:
                log.warning("snowflake: %s", exc)


__all__ = ["STATE_TABLE", "StagedLoad", "describe_columns"]
