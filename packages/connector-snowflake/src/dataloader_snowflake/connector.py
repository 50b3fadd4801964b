"""The ``snowflake`` connector: a source read as Arrow and a transactional, staged destination."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
from dataloader.batch import Batch
from dataloader.config import check_merge_keys
from dataloader.connector import BaseConnector, Capabilities
from dataloader.errors import ConnectorError, DataLoaderError
from dataloader.state import State

from dataloader_snowflake.capabilities import CAPABILITIES
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.driver import connect, load_driver, translate
from dataloader_snowflake.load import STATE_TABLE, StagedLoad
from dataloader_snowflake.names import TableName, quote
from dataloader_snowflake.types import conform, read_field

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


class SnowflakeConnector(BaseConnector):
    """Reads a table or query with ``fetch_arrow_batches``; writes staged Parquet in one transaction."""

    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: SnowflakeConfig) -> None:
        super().__init__(config)
        self.config: SnowflakeConfig = config
        self._driver = load_driver()
        self._conn: Any = None
        self._load: StagedLoad | None = None
        self._writes = 0
        self._table: TableName | None = None
        self._fields: list[pa.Field] | None = None

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> None:
        if self._conn is None:
            self._conn = connect(self.config)

    def close(self) -> None:
        if self._load is not None:
            self.abort()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._driver.Error:
                pass  # the session is gone already; Snowflake ends it on its side

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self.open()
        return self._conn

    def _run(self, sql: str, params: Any, doing: str) -> list[tuple[Any, ...]] | None:
        """Execute one statement; its rows if it returns any. Driver errors leave translated."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        except self._driver.Error as exc:
            raise translate(exc, self.config, doing, target=self.config.describe_target()) from exc

    def _fail(self, exc: BaseException, doing: str) -> DataLoaderError:
        return translate(exc, self.config, doing, target=self.config.describe_target())

    def table(self) -> TableName:
        """The configured table, its database and schema filled in from the session if not given."""
        if self._table is None:
            name = self.config.table_name()
            if name.database is None or name.schema is None:
                row = (self._run("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()", None, "read the session's database") or [(None, None)])[0]
                name = TableName(name.table, name.schema or row[1], name.database or row[0])
            if name.database is None or name.schema is None:
                raise ConnectorError(
                    f"snowflake table {self.config.table}: no database or schema; set `database` and `schema` "
                    "(or write the table as database.schema.name)",
                    key="table",
                )
            self._table = name
        return self._table

    def _record_table(self) -> Any:
        from dataloader.run.ledger import CommitRecordTable

        return CommitRecordTable(self.table().sibling(STATE_TABLE).sql(), paramstyle="qmark", text_type="VARCHAR")

    # -- information ----------------------------------------------------------------------------
    def test_connection(self) -> None:
        self._run("SELECT 1", None, "test the connection")
        if self.context.role == "source":
            self._describe()

    def estimate_total_records(self, state: State) -> int | None:
        """The table's ``ROW_COUNT`` from INFORMATION_SCHEMA (metadata, no scan).

        None for a query and for an incremental read past its first run.
        """
        if self.config.query or self._cursor_start(state) is not None:
            return None
        table = self.table()
        rows = self._run(
            f"SELECT ROW_COUNT FROM {quote(table.database or '')}.INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (table.schema, table.table),
            f"estimate the row count of table {table.display()}",
        )
        if not rows or rows[0][0] is None:
            return None
        return int(rows[0][0])

    def get_schema(self) -> pa.Schema | None:
        return pa.schema(self._describe())

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        table = self.table()
        exists = self._run(
            f"SELECT COUNT(*) FROM {quote(table.database or '')}.INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (table.schema, STATE_TABLE),
            "look for the commit-record table",
        )
        if not exists or not exists[0][0]:
            return None
        records = self._record_table()
        sql, params = records.read_statement(recipe_name)
        rows = self._run(sql, params, "read the committed state")
        record = records.parse(recipe_name, rows[0] if rows else None)
        return record.to_dict() if record is not None else None

    # -- reading --------------------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query:
            return f"({self.config.query}) AS _dataloader_query"
        return self.table().sql()

    def _describe(self) -> list[pa.Field]:
        """The Arrow field of each column read, from the driver's result metadata."""
        if self._fields is not None:
            return self._fields
        from snowflake.connector.constants import FIELD_ID_TO_NAME

        try:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {self._relation()} LIMIT 0")
                description = cur.description
        except self._driver.Error as exc:
            raise self._fail(exc, f"read the columns of the {self.config.describe_target()}") from exc
        try:
            self._fields = [read_field(d.name, FIELD_ID_TO_NAME[d.type_code], d.precision, d.scale) for d in description]
        except ValueError as exc:
            raise ConnectorError(f"snowflake {self.config.describe_target()}: {exc}") from None
        return self._fields

    def _column(self, name: str, key: str) -> str:
        """The read's own name of column ``name`` (exact, else equal ignoring case)."""
        names = [f.name for f in self._describe()]
        if name in names:
            return name
        folded = [n for n in names if n.upper() == name.upper()]
        if len(folded) == 1:
            return folded[0]
        raise ConnectorError(
            f"{key} {name!r} is not a column of the {self.config.describe_target()} (columns: {', '.join(names)})",
            column=name,
        )

    def _cursor_start(self, state: State) -> Any:
        incremental = self.config.incremental
        if incremental is None or not incremental.cursor_column:
            return None
        return state.cursor_value(incremental.cursor_column, incremental.initial_value)

    def select_sql(self, state: State) -> tuple[str, list[Any]]:
        """The read's SELECT: the cursor as a bound ``>=`` (the engine drops the tie rows it has)."""
        sql = f"SELECT * FROM {self._relation()}"
        params: list[Any] = []
        incremental = self.config.incremental
        start = self._cursor_start(state)
        if incremental is not None and incremental.cursor_column:
            cursor = self._column(incremental.cursor_column, "incremental.cursor_column")
            if start is not None:
                sql += f" WHERE {quote(cursor)} >= ?"
                params.append(start)
        if self.context.extras.get("ordered"):
            # A checkpointed run resumes by row count, so the read needs a stable order.
            keys = [incremental.cursor_column] if incremental is not None and incremental.cursor_column else []
            keys += list(incremental.primary_key or []) if incremental is not None else []
            order = [quote(self._column(k, "incremental.primary_key")) for k in dict.fromkeys(keys)]
            sql += " ORDER BY " + (", ".join(order) or ", ".join(str(i + 1) for i in range(len(self._describe()))))
        return sql, params

    def read_batches(self, state: State) -> Iterator[Batch]:
        fields = self._describe()
        schema = pa.schema(fields)
        sql, params = self.select_sql(state)
        doing = f"read the {self.config.describe_target()}"
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params or None)
                # One Arrow table per result chunk (the emulator returns the whole result as one).
                for table in cur.fetch_arrow_batches():
                    for record_batch in table.to_batches(max_chunksize=self.context.batch_size):
                        yield Batch.from_arrow(_conformed(record_batch, schema))
        except self._driver.Error as exc:
            raise self._fail(exc, doing) from exc
        except pa.ArrowInvalid as exc:
            raise ConnectorError(f"could not convert the {self.config.describe_target()} to Arrow: {exc}") from exc

    # -- writing --------------------------------------------------------------------------------
    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        if not self.config.table:
            raise ConnectorError("a snowflake destination needs `table`, not `query`")
        check_merge_keys(mode, self.config.merge_keys)
        if self._load is not None:
            self.abort()  # a write begun and never committed or aborted
        self._writes += 1
        prefix = "/".join(
            _UNSAFE.sub("_", part)
            for part in (self.context.recipe_name, self.context.run_id, f"{self._writes:04d}-{uuid.uuid4().hex[:8]}")
        )
        load = StagedLoad(
            self._run,
            self.table(),
            mode,
            list(self.config.merge_keys),
            stage=_stage_name(self.config.stage),
            prefix=prefix,
            part_bytes=self.config.part_size_mb * 1024 * 1024,
            variant_columns=self.config.variant_columns,
        )
        self._load = load
        try:
            load.prepare(schema, self._record_table())
        except BaseException:
            self.abort()
            raise

    def write_batch(self, batch: Batch, state: State) -> None:
        if self._load is None:
            raise ConnectorError("write_batch called before begin()")
        try:
            for piece in batch.to_arrow_chunks():
                self._load.write(piece)
        except (OSError, pa.ArrowException) as exc:
            raise ConnectorError(f"could not write a Parquet part for {self._load.label}: {exc}") from exc

    def commit(self, state: State) -> None:
        if self._load is None:
            raise ConnectorError("commit called before begin()")
        from dataloader.run.ledger import CommitRecord

        load = self._load
        published = {"rows": load.rows, "mode": load.mode, **(self.context.extras.get("published") or {})}
        record = CommitRecord.for_commit(self.context.recipe_name, self.context.run_id, state, published=published)
        try:
            load.publish(self._record_table().write_statements(record))
        except BaseException:
            self._rollback(load)
            raise
        finally:
            self._load = None
            load.cleanup()

    def abort(self) -> None:
        load, self._load = self._load, None
        if load is not None:
            self._rollback(load)
            load.cleanup()

    def _rollback(self, load: StagedLoad) -> None:
        try:
            load.rollback()
        except ConnectorError:
            # A broken session: Snowflake rolls back an open transaction when the session ends.
            self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._driver.Error:
                pass


def _stage_name(stage: str) -> str:
    from dataloader_snowflake.names import parse_identifier

    return parse_identifier(stage)


def _conformed(record_batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The driver's batch with the read's schema (int64 for NUMBER(p,0), UTC time zones ...)."""
    columns = [conform(record_batch.column(i), field) for i, field in enumerate(schema)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
