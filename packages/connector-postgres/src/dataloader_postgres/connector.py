"""The ``postgres`` connector: a source and a transactional destination."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
from dataloader.batch import Batch, rechunk
from dataloader.config import check_merge_keys
from dataloader.connector import BaseConnector, Capabilities, Partition
from dataloader.errors import ConnectorError, DataLoaderError, LeaseHeldError, LeaseLostError
from dataloader.run.ledger import CommitRecord, LeaseHolder
from dataloader.state import State

from dataloader_postgres import reader, writer
from dataloader_postgres.capabilities import CAPABILITIES
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connection import ReplyDeadline, connect, describe_server, driver, translate
from dataloader_postgres.lock import RecipeLock
from dataloader_postgres.types import PORTABLE_TYPES, ReadColumn


class PostgresConnector(BaseConnector):
    """Reads a table or query with COPY; writes through a staging table in one transaction."""

    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: PostgresConfig) -> None:
        super().__init__(config)
        self.config: PostgresConfig = config
        self._psycopg2 = driver()
        self._conn: Any = None
        self._write: writer.StagedWrite | None = None
        self._columns: list[ReadColumn] | None = None
        self._lock: RecipeLock | None = None

    # -- connections -------------------------------------------------------------------------
    def open(self) -> None:
        if self._conn is None:
            self._conn = connect(self.config)

    def close(self) -> None:
        if self._lock is not None:
            self.release_lock(self._lock.recipe_name)
        if not self._stop_writing():
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._psycopg2.Error:
                pass  # closing a broken connection; the server has already dropped the session

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self.open()
        return self._conn

    def _fail(self, exc: BaseException, doing: str, conn: Any = None) -> ConnectorError:
        if isinstance(exc, DataLoaderError):
            return exc  # type: ignore[return-value]
        return translate(exc, self.config, doing, conn=conn if conn is not None else self._conn)

    def _where(self) -> str:
        return f"postgres ({describe_server(self.config)}) {self.config.describe_target()}"

    # -- information -----------------------------------------------------------------------
    def test_connection(self) -> None:
        conn = connect(self.config)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                if self.context.role == "source":  # the table exists, the query parses
                    self._read_columns(cur)
        except self._psycopg2.Error as exc:
            raise self._fail(exc, "testing the connection") from exc
        finally:
            conn.close()

    def estimate_total_records(self, state: State) -> int | None:
        """The catalog's row estimate for a table (``pg_class.reltuples``).

        None for a query, and for an incremental read past its first run (the table's size says
        nothing about how many rows are new).
        """
        if self.config.query or self._cursor_conditions(state):
            return None
        schema, table = self.config.qualified_table()
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT c.reltuples::bigint FROM pg_catalog.pg_class c "
                    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                    (schema, table),
                )
                row = cur.fetchone()
            self.conn.rollback()
        except self._psycopg2.Error as exc:
            raise self._fail(exc, "estimating the row count") from exc
        if row is None or row[0] is None or row[0] < 0:
            return None
        return int(row[0])

    def get_schema(self) -> pa.Schema | None:
        try:
            with self.conn.cursor() as cur:
                columns = self._read_columns(cur)
                not_null = set() if self.config.query else reader.not_null_columns(cur, *self.config.qualified_table())
            self.conn.rollback()
        except self._psycopg2.Error as exc:
            raise self._fail(exc, "reading the column types") from exc
        return reader.declared_schema(columns, not_null)

    #: The mapping between portable and PostgreSQL types (``types.PORTABLE_TYPES``), for the schema gate.
    schema_types = PORTABLE_TYPES

    @property
    def schema_target(self) -> str:
        """The destination table, as the schema gate's DDL names it."""
        return ".".join(self.config.qualified_table())

    def current_schema(self) -> pa.Schema | None:
        """The destination table's columns now as Arrow fields, or None before it exists."""
        if not self.config.table:
            return None
        schema, table = self.config.qualified_table()
        try:
            with self.conn.cursor() as cur:
                described = reader.describe_table(cur, schema, table)
                columns = reader.plan_columns(cur, described) if described else None
                not_null = reader.not_null_columns(cur, schema, table) if columns else set()
            self.conn.rollback()
        except self._psycopg2.Error as exc:
            raise self._fail(exc, "reading the destination's column types") from exc
        return reader.declared_schema(columns, not_null) if columns else None

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        """The recipe's committed :class:`~dataloader.run.ledger.CommitRecord` as a dict, or None.

        Read in a transaction of its own; while a write is open on the run's connection, on a
        short-lived second one (the open write's rows are not committed, and must stay so).
        """
        own = self._write is None
        conn = self.conn if own else connect(self.config)
        try:
            conn.rollback()  # a fresh snapshot: only what is committed now
            with conn.cursor() as cur:
                found = writer.read_commit_record(cur, recipe_name)
            conn.rollback()
        except self._psycopg2.Error as exc:
            raise self._fail(exc, "reading the committed state", conn) from exc
        finally:
            if not own:
                conn.close()
        return found.to_dict() if found is not None else None

    # -- reading ---------------------------------------------------------------------------
    def _read_columns(self, cur: Any) -> list[ReadColumn]:
        if self._columns is not None:
            return self._columns
        if self.config.query:
            described = reader.describe_query(cur, self.config.query)
        else:
            schema, table = self.config.qualified_table()
            described = reader.describe_table(cur, schema, table)
            if not described:
                raise ConnectorError(
                    f"postgres ({describe_server(self.config)}): table {schema}.{table} does not exist "
                    "(or has no columns you may read); check `table` (schema.table)",
                    table=f"{schema}.{table}",
                )
        self._columns = reader.plan_columns(cur, described)
        return self._columns

    def _base_select(self, columns: list[ReadColumn] | None, conditions: list[Any], what: Any = None) -> Any:
        """``SELECT <columns, as COPY needs them> FROM <table or query> WHERE <conditions>``."""
        from psycopg2 import sql

        if self.config.query:
            relation = sql.SQL("({}) AS _dataloader_query").format(sql.SQL(self.config.query))
        else:
            relation = sql.Identifier(*self.config.qualified_table())
        select_list = reader.select_list(columns) if columns is not None else what
        statement = sql.SQL("SELECT {} FROM {}").format(select_list, relation)
        if conditions:
            statement += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
        order = self._stable_order() if columns is not None and self.context.extras.get("ordered") else []
        if order:
            statement += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order)
        return statement

    def _stable_order(self) -> list[Any]:
        """A stable order for runs that checkpoint (a resumed run skips committed rows by count).

        The cursor column and primary key when the recipe names them; for a table without them its
        physical order (``ctid``), which holds while the table is not rewritten.
        """
        from psycopg2 import sql

        incremental = self.config.incremental
        keys = [incremental.cursor_column] if incremental is not None and incremental.cursor_column else []
        keys += [k for k in (incremental.primary_key or []) if k not in keys] if incremental is not None else []
        order = [sql.Identifier(name) for name in keys]
        if not self.config.query and not (incremental is not None and incremental.primary_key):
            order.append(sql.SQL("ctid"))
        return order

    def _cursor_conditions(self, state: State) -> list[Any]:
        from psycopg2 import sql

        incremental = self.config.incremental
        if incremental is None or not incremental.cursor_column:
            return []
        start = state.cursor_value(incremental.cursor_column, incremental.initial_value)
        if start is None:
            return []
        return [sql.SQL("{} >= {}").format(sql.Identifier(incremental.cursor_column), sql.Literal(start))]

    def read_batches(self, state: State) -> Iterator[Batch]:
        try:
            self.conn.rollback()  # a fresh transaction, also after an earlier read stopped early
            with self.conn.cursor() as cur:
                columns = self._read_columns(cur)
        except self._psycopg2.Error as exc:
            raise self._fail(exc, f"reading the columns of the {self.config.describe_target()}") from exc
        self._check_cursor_column(columns)
        schema = pa.schema([c.arrow_field() for c in columns])
        conditions = self._cursor_conditions(state)
        partition = self.config.partition
        parallel = partition is not None and self.context.parallelism > 1 and partition.partitions > 1
        if parallel and not self.context.extras.get("ordered"):
            yield from self._read_partitioned(state)
            return
        batches = self._read_range(self.conn, columns, schema, conditions)
        # Parse blocks (~2,600 rows) cut to the run's batch size without a copy: a batch across
        # blocks holds their slices as pieces.
        yield from rechunk((Batch.from_arrow(batch) for batch in batches), self.context.batch_size)

    def _check_cursor_column(self, columns: list[ReadColumn]) -> None:
        names = [c.name for c in columns]
        for key, column in (
            ("incremental.cursor_column", self.config.incremental.cursor_column if self.config.incremental else None),
            ("partition.column", self.config.partition.column if self.config.partition else None),
        ):
            if column and column not in names:
                raise ConnectorError(
                    f"{key} {column!r} is not a column of the {self.config.describe_target()} "
                    f"(columns: {', '.join(names)})",
                    column=column,
                )

    def _read_range(
        self, conn: Any, columns: list[ReadColumn], schema: pa.Schema, conditions: list[Any]
    ) -> Iterator[pa.RecordBatch]:
        select = self._base_select(columns, conditions)
        yield from reader.stream_copy(
            conn,
            select,
            columns,
            schema,
            on_error=lambda exc: self._fail(exc, f"reading the {self.config.describe_target()}", conn),
            where=self._where(),
            unlimited=bool(self.config.statement_timeout),
        )

    # -- partitioned reading ---------------------------------------------------------------
    def _read_partitioned(self, state: State) -> Iterator[Batch]:
        """Key ranges read concurrently on their own connections, sharing one snapshot.

        The same seam an executor uses: :meth:`partitions` plans the ranges and exports the
        snapshot, :meth:`read_partition` reads one range; core's ``read_partitions`` runs
        ``runtime.parallelism`` of them at a time.
        """
        from dataloader.run.pipeline import read_partitions

        try:
            ranges = self.partitions(state)
            workers = min(self.context.parallelism, len(ranges))
            producers = [lambda p=p: self.read_partition(p, state) for p in ranges]
            yield from read_partitions(producers, workers, 2 * workers)
        finally:
            self._end_snapshot()

    def _end_snapshot(self) -> None:
        """Let go of the exported snapshot: end the planning transaction, back to the default session."""
        try:
            self.conn.rollback()
            self.conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
        except self._psycopg2.Error:
            pass  # the coordinator is only holding the snapshot; a broken one is closed later

    def _partition_edges(self, cur: Any, conditions: list[Any]) -> list[tuple[Any, Any]]:
        """``(lower, upper)`` key ranges of ``partition.column`` from its min/max (``None``: open end)."""
        from psycopg2 import sql

        assert self.config.partition is not None
        column = sql.Identifier(self.config.partition.column)
        statement = self._base_select(None, conditions, sql.SQL("min({0}), max({0})").format(column))
        cur.execute(statement)
        low, high = cur.fetchone()
        bounds = split_range(low, high, self.config.partition.partitions)
        edges = [None, *bounds, None]
        return list(zip(edges, edges[1:], strict=False))

    def _range_conditions(self, lower: Any, upper: Any) -> list[Any]:
        """The WHERE parts of one key range; the first range also takes the NULL keys."""
        from psycopg2 import sql

        assert self.config.partition is not None
        column = sql.Identifier(self.config.partition.column)
        parts: list[Any] = []
        if lower is not None:
            parts.append(sql.SQL("{} >= {}").format(column, sql.Literal(lower)))
        if upper is not None:
            below = sql.SQL("{} < {}").format(column, sql.Literal(upper))
            parts.append(below if lower is not None else sql.SQL("({} OR {} IS NULL)").format(below, column))
        return parts

    def _partition_conditions(self, cur: Any, columns: list[ReadColumn], conditions: list[Any]) -> list[list[Any]]:
        return [list(conditions) + self._range_conditions(lower, upper) for lower, upper in self._partition_edges(cur, conditions)]

    # -- the Partitions seam (an executor runs the key ranges where it likes) ---------------
    def partitions(self, state: State) -> list[Partition]:
        """The ``partition`` key ranges, all to be read under one snapshot this connection exports and holds.

        The snapshot lives as long as this connector's transaction: until its next read or
        ``close``. Without a ``partition`` setting (or with one range) the source has no partitions.
        """
        partition = self.config.partition
        if partition is None or partition.partitions <= 1:
            return []
        conn = self.conn
        try:
            conn.rollback()
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
                self._check_cursor_column(self._read_columns(cur))
                edges = self._partition_edges(cur, self._cursor_conditions(state))
        except self._psycopg2.Error as exc:
            raise self._fail(exc, "planning the partitions of the read") from exc
        column = partition.column
        return [
            Partition(
                name=f"{column}[{'' if lower is None else lower}..{'' if upper is None else upper})",
                spec={"lower": lower, "upper": upper, "snapshot": snapshot},
            )
            for lower, upper in edges
        ]

    def read_partition(self, partition: Partition, state: State) -> Iterator[Batch]:
        """One key range on a connection of its own, under the planner's exported snapshot.

        A connection per call, so several partitions can be read at once (``runtime.parallelism``)
        and a worker of a remote executor needs nothing but the config.
        """
        snapshot = partition.spec.get("snapshot")
        try:
            conn = connect(self.config)
        except self._psycopg2.Error as exc:
            raise self._fail(exc, f"connecting for partition {partition.name}") from exc
        try:
            yield from self._read_one_partition(conn, partition, snapshot, state)
        finally:
            conn.close()

    def _read_one_partition(self, conn: Any, partition: Partition, snapshot: str | None, state: State) -> Iterator[Batch]:
        try:
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cur:
                if snapshot:
                    try:
                        cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
                    except self._psycopg2.Error as exc:
                        raise ConnectorError(
                            f"postgres ({describe_server(self.config)}): the run's snapshot {snapshot} is gone (the "
                            "driver's connection that exported it was closed), so partition "
                            f"{partition.name} cannot be read consistently with the others; run the recipe again",
                            partition=partition.name,
                        ) from exc
                columns = self._read_columns(cur)
        except self._psycopg2.Error as exc:
            raise self._fail(exc, f"starting partition {partition.name}") from exc
        self._check_cursor_column(columns)
        schema = pa.schema([c.arrow_field() for c in columns])
        conditions = self._cursor_conditions(state) + self._range_conditions(partition.spec.get("lower"), partition.spec.get("upper"))
        batches = self._read_range(conn, columns, schema, conditions)
        yield from rechunk((Batch.from_arrow(batch) for batch in batches), self.context.batch_size)

    # -- the run's lock --------------------------------------------------------------------
    def acquire_lock(self, recipe_name: str, holder: LeaseHolder) -> None:
        """Hold the recipe's advisory lock on this server until ``release_lock`` or ``close``."""
        if not self.config.table:
            return  # a query source: there is no target table to guard
        if self._lock is None or self._lock.recipe_name != recipe_name:
            self.release_lock(recipe_name)
            self._lock = RecipeLock(self.config, recipe_name)
        self._lock.acquire(holder)

    def release_lock(self, recipe_name: str) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _check_lock(self, cur: Any) -> None:
        """Before COMMIT: the lock's session must still hold it (its connection may have dropped).

        A lost lock is taken again if it is free; if another run has it now, nothing is committed.
        """
        lock = self._lock
        if lock is None or lock.held(cur):
            return
        holder = lock.holder
        lock.release()
        try:
            if holder is not None:
                lock.acquire(holder)
        except LeaseHeldError as exc:
            raise LeaseLostError(
                f"the advisory lock of recipe '{lock.recipe_name}' was lost while this run ran "
                f"(its connection dropped) and another run holds it now; nothing of this run was "
                f"committed: {exc}",
                recipe=lock.recipe_name,
            ) from exc

    # -- writing ---------------------------------------------------------------------------
    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        if not self.config.table:
            raise ConnectorError("a postgres destination needs `table` (schema.table), not `query`")
        check_merge_keys(mode, self.config.merge_keys)
        target_schema, table = self.config.qualified_table()
        self._stop_writing()  # a write begun and never committed or aborted
        try:
            self.conn.rollback()
            self._write = writer.StagedWrite(
                self.conn, target_schema, table, mode, self.config.merge_keys, self.config.overwrite_method,
                statement_timeout=self.config.statement_timeout, nul_bytes=self.config.nul_bytes,
            )
            self._write.widen = dict(self.context.extras.get("schema_widen") or {})
            self._write.begin(schema)
        except self._psycopg2.Error as exc:
            self._rollback()
            raise self._fail(exc, f"preparing to write table {target_schema}.{table}") from exc
        except BaseException:
            self._rollback()
            raise

    def write_batch(self, batch: Batch, state: State) -> None:
        if self._write is None:
            raise ConnectorError("write_batch called before begin()")
        try:
            self._write.write(batch.to_arrow_chunks())  # encoded piece by piece: the pieces are never joined
        except self._psycopg2.Error as exc:
            raise self._fail(exc, f"copying rows into the staging table for {self._write.label}") from exc

    def commit(self, state: State) -> None:
        """End the COPY, publish the rows and the commit record, check the lock, COMMIT.

        Any failure rolls the transaction back, except a COMMIT whose reply never came: its
        outcome is unknown here, and the engine settles it by reading the commit record.
        """
        if self._write is None:
            raise ConnectorError("commit called before begin()")
        write, self._write = self._write, None
        timeout = self.config.statement_timeout
        steps = (
            (f"copying rows into the staging table for {write.label}", None, write.end_copy),
            (
                f"publishing the rows into {write.label}",
                ("statement_timeout + network_timeout", timeout + self.config.network_timeout if timeout else None),
                lambda: self._publish(write, state),
            ),
            (f"committing to {write.label}", ("network_timeout", self.config.network_timeout), self.conn.commit),
        )
        for doing, limit, step in steps:
            setting, seconds = limit or ("", None)
            try:
                with ReplyDeadline(self.conn, seconds) as waited:
                    step()
            except self._psycopg2.Error as exc:
                self._rollback()
                raise self._overdue(exc, waited, doing, setting) from exc
            except BaseException:
                self._rollback()
                raise

    def _publish(self, write: writer.StagedWrite, state: State) -> None:
        write.publish(self._commit_record(write, state))
        with self.conn.cursor() as cur:
            self._check_lock(cur)

    def _overdue(self, exc: BaseException, deadline: ReplyDeadline, doing: str, setting: str) -> ConnectorError:
        """The error for a failure; one whose reply never came says so, and which setting waited."""
        error = self._fail(exc, doing)
        if deadline.expired:
            error.message = (
                f"postgres ({describe_server(self.config)}): {doing} failed: no reply from the server within "
                f"{deadline.seconds:g} s ({setting}); "
                "the network or the server stopped responding, so the connection was given up"
            )
            error.args = (error.message,)
        return error

    def _commit_record(self, write: writer.StagedWrite, state: State) -> CommitRecord:
        published = {"rows": write.rows_staged, "mode": write.mode, **(self.context.extras.get("published") or {})}
        return CommitRecord.for_commit(self.context.recipe_name, self.context.run_id, state, published)

    def abort(self) -> None:
        if self._stop_writing():
            self._rollback()

    def _stop_writing(self) -> bool:
        """Abort the write's running COPY, if any. True when the connection may be used again.

        A COPY thread that would not stop still owns the connection: it is dropped unclosed (the
        thread keeps it alive, its transaction never commits) and the next use opens a new one.
        """
        write, self._write = self._write, None
        if write is None or write.stop_copy():
            return True
        self._conn = None
        return False

    def _rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except self._psycopg2.Error:
            self.close()  # a broken connection: closing it rolls back on the server


def split_range(low: Any, high: Any, partitions: int) -> list[Any]:
    """Inner boundaries splitting ``[low, high]`` into up to ``partitions`` ranges."""
    if low is None or high is None or low == high or partitions < 2:
        return []
    if isinstance(low, bool):
        return []
    if isinstance(low, int):
        step = max(1, -(-(high - low + 1) // partitions))
        return [low + step * i for i in range(1, partitions) if low + step * i <= high]
    if isinstance(low, (float, Decimal)):
        step = (high - low) / partitions
        return sorted({low + step * i for i in range(1, partitions)})
    if isinstance(low, dt.datetime):
        step = (high - low) / partitions
        return sorted({low + step * i for i in range(1, partitions)})
    if isinstance(low, dt.date):
        days = (high - low).days
        step = max(1, -(-(days + 1) // partitions))
        return [low + dt.timedelta(days=step * i) for i in range(1, partitions) if step * i <= days]
    raise ConnectorError(
        f"cannot partition on a column of type {type(low).__name__}; use an integer, numeric, date or timestamp column"
    )
