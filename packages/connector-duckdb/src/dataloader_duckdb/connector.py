"""The DuckDB connector: a source of Arrow record batches and a transactional destination.

As a source it streams a table or a query straight out of DuckDB as Arrow record batches, with
the incremental cursor applied as a parameterised ``>=`` predicate. As a destination it writes
through :class:`~dataloader_duckdb.writer.StagedLoad`: one transaction per run.

This module does not import ``duckdb``; building a connector does (so a missing driver is a clear
error naming the install command, and ``import dataloader_duckdb.plugin`` stays cheap).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from dataloader.batch import Batch
from dataloader.config import check_merge_keys
from dataloader.connector import BaseConnector, Capabilities, Partition
from dataloader.errors import ConnectorError, LeaseHeldError
from dataloader.run.ledger import CommitRecord, LeaseHolder

from dataloader_duckdb import driver
from dataloader_duckdb.capabilities import CAPABILITIES
from dataloader_duckdb.config import DuckDBConfig
from dataloader_duckdb.names import TableName, quote_ident
from dataloader_duckdb.types import PORTABLE_TYPES
from dataloader_duckdb.writer import (
    MemoryLimit,
    StagedLoad,
    arrow_columns,
    home,
    read_record,
    table_columns,
    type_conflicts,
    unstorable_columns,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from dataloader.state import State


#: The load's limit under ``memory_limit: auto`` (see ``MemoryLimit``): 2M CSV rows peak at ~260 MiB.
AUTO_MEMORY_LIMIT = "48MB"


#: Recipes held by a run in this process, by (database file, recipe): see ``acquire_lock``.
_LOCKS: dict[tuple[str, str], LeaseHolder] = {}
_LOCKS_GUARD = threading.Lock()


class DuckDBConnector(BaseConnector):
    """Reads and writes one DuckDB table (or reads one query) in one database file."""

    capabilities: ClassVar[Capabilities] = CAPABILITIES

    config: DuckDBConfig

    def __init__(self, config: DuckDBConfig) -> None:
        super().__init__(config)
        driver.load_driver()
        self._con: Any = None
        self._target: TableName | None = None
        self._temp_directory = ""  # where DuckDB spills (for messages; removed at close when empty)
        self._home: tuple[str, str] = ("", "main")  # the connection's catalog and default schema
        self._load: StagedLoad | None = None
        self._readers: set[Any] = set()  # connections of reads in progress (read_batches)
        self._locked: set[str] = set()  # recipes this connector holds the lock of (acquire_lock)
        self._memory: MemoryLimit | None = None

    # -- names ------------------------------------------------------------------------------
    @property
    def database(self) -> str:
        return driver.database_path(self.config.database)

    @property
    def table(self) -> TableName:
        name = self.config.table_name
        if name is None:
            raise ConnectorError(
                f"a DuckDB destination needs 'table' (the 'query' key is for sources only); database {self.database}",
                database=self.database,
            )
        return name

    @property
    def qualified_table(self) -> TableName:
        """``table`` with its catalog and schema spelled out, as every statement names it (connects)."""
        if self._target is None:
            self._home = home(self._connection())
            self._target = self.table.in_catalog(*self._home)
        return self._target

    @property
    def _is_destination(self) -> bool:
        return self.context.role == "destination"

    def _describe(self) -> str:
        """What this connector reads or writes, for messages."""
        what = f"table {self.config.table}" if self.config.table else "the source query"
        return f"{what} in DuckDB database {self.database}"

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """A destination connects now; a source checks its file and connects on first use."""
        if self._is_destination:
            self.table  # noqa: B018 - raises the "needs table" error before anything is touched
            driver.require_parent_dir(self.config.database)
            self._connection()
        else:
            driver.require_existing_file(self.config.database)

    def _connection(self) -> Any:
        """The open connection, made on first use.

        A source connects lazily, read-only where possible: the engine opens the source before the
        destination, and DuckDB lets one process hold a file either read-only or read-write, so a
        recipe that reads and writes the same file must let the destination connect first.
        """
        if self._con is None:
            if self._is_destination:
                self._con = driver.connect(self.config.database, read_only=False)
                order = "true" if self.config.preserve_insertion_order else "false"
                with driver.translating("set preserve_insertion_order"):
                    self._con.execute(f"SET SESSION preserve_insertion_order = {order}")
                    self._con.execute("SET enable_progress_bar = false")  # DuckDB would draw on our output
                limit = self.config.memory_limit
                if limit and not driver.is_memory(driver.database_path(self.config.database)):
                    auto = limit.strip().lower() == "auto"
                    with driver.translating("set destination.memory_limit", memory_limit=limit):
                        self._memory = MemoryLimit(self._con, AUTO_MEMORY_LIMIT if auto else limit, lifts=auto)
                with driver.translating("read temp_directory"):
                    self._temp_directory = self._con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
            else:
                driver.require_existing_file(self.config.database)
                self._con = driver.connect(self.config.database, read_only=True)
        return self._con

    def close(self) -> None:
        try:
            self.abort()
        finally:
            for recipe_name in list(self._locked):
                self.release_lock(recipe_name)
            if self._memory is not None:
                memory, self._memory = self._memory, None
                memory.close()
            if self._con is not None:
                con, self._con = self._con, None
                self._target = None
                # A read still running on the engine's reader thread (a run stopped by a signal)
                # keeps the connection busy, and DuckDB refuses to close it: the process ends anyway.
                if not self._readers:
                    con.close()

    # -- source -----------------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query:
            query = self.config.query.strip().rstrip(";").strip()
            return f"SELECT * FROM ({query}) AS _dataloader_query"
        return f"SELECT * FROM {self.qualified_table.sql}"

    def _order_by(self, con: Any) -> str:
        """``ORDER BY`` when the engine needs a stable order (checkpointed runs skip rows by count).

        Cursor column first, then the primary key, or every column when there is no key.
        """
        if not self.context.extras.get("ordered"):
            return ""
        incremental = self.config.incremental
        wanted = [incremental.cursor_column] if incremental is not None and incremental.cursor_column else []
        key = list(incremental.primary_key or []) if incremental is not None else []
        names = [row[0] for row in con.execute(f"DESCRIBE {self._relation()}").fetchall()]
        wanted += key or [name for name in names if name not in wanted]
        return " ORDER BY " + ", ".join(quote_ident(self._find_column(con, name, names)) for name in wanted)

    def _cursor_predicate(self, con: Any, state: State) -> tuple[str, list[Any]]:
        incremental = self.config.incremental
        if incremental is None or incremental.strategy != "cursor" or not incremental.cursor_column:
            return "", []
        start = state.cursor_value(incremental.cursor_column, incremental.initial_value)
        if start is None:
            return "", []
        column = self._find_column(con, incremental.cursor_column)
        return f" WHERE {quote_ident(column)} >= ?", [start]

    def _find_column(self, con: Any, wanted: str, names: list[str] | None = None) -> str:
        if names is None:
            names = [row[0] for row in con.execute(f"DESCRIBE {self._relation()}").fetchall()]
        for name in names:
            if name == wanted:
                return name
        for name in names:
            if name.lower() == wanted.lower():
                return name
        raise ConnectorError(
            f"column {wanted!r} (cursor or key) is not in {self._describe()}; columns: {', '.join(names)}",
            database=self.database,
            column=wanted,
        )

    def read_batches(self, state: State) -> Iterator[Batch]:
        return self._stream(f"read {self._describe()}", lambda con: self._select(con, state))

    def partitions(self, state: State) -> list[Partition]:
        """``partitions`` ranges of the table's ``rowid`` (none for a query or with ``partitions: 1``)."""
        count = self.config.partitions
        if count <= 1 or self.config.query or self._is_destination:
            return []
        with driver.translating(f"plan the partitions of {self._describe()}", database=self.database):
            top = self._connection().execute(f"SELECT max(rowid) FROM {self.qualified_table.sql}").fetchall()[0][0]
        if top is None:
            return []
        step = -(-(int(top) + 1) // count)
        return [
            Partition(name=f"rowid[{low}..{low + step})", spec={"lower": low, "upper": low + step})
            for low in range(0, int(top) + 1, step)
        ]

    def read_partition(self, partition: Partition, state: State) -> Iterator[Batch]:
        """One ``rowid`` range, on a cursor of its own (several may be read at once)."""
        return self._stream(
            f"read {partition.name} of {self._describe()}", lambda con: self._select(con, state, partition)
        )

    def _select(self, con: Any, state: State, partition: Partition | None = None) -> tuple[str, list[Any]]:
        """The query of a read (past the cursor; within the partition's ``rowid`` range) and its parameters."""
        predicate, params = self._cursor_predicate(con, state)
        relation = self._relation()
        if partition is not None:
            rows = "rowid >= ? AND rowid < ?"
            predicate = f"{predicate} AND {rows}" if predicate else f" WHERE {rows}"
            params = [*params, partition.spec["lower"], partition.spec["upper"]]
            relation = f"SELECT * FROM {self.qualified_table.sql}"
        return relation + predicate + self._order_by(con), list(params)

    def _stream(self, doing: str, select: Any) -> Iterator[Batch]:
        """Run ``select(cursor)``'s query on a cursor of its own and yield its non-empty batches.

        The engine reads in its own thread (and partitions may be read at once): each read gets its
        own cursor on the same database, closed when the read ends or is abandoned.
        """
        with driver.translating(f"read {self._describe()}", database=self.database):
            con = self._connection().cursor()
        self._readers.add(con)
        try:
            with driver.translating(doing, database=self.database):
                _use_utc(con)
                sql, params = select(con)
                reader = driver.arrow_reader(con, sql, params, self.context.batch_size)
                for record_batch in reader:
                    if record_batch.num_rows:
                        yield Batch.from_arrow(record_batch)
        finally:
            self._readers.discard(con)
            con.close()

    def estimate_total_records(self, state: State) -> int | None:
        """Counts a table's rows (past the cursor); a query is not run twice just for a progress bar."""
        if self.config.query or self._is_destination:
            return None
        with driver.translating(f"count the rows of {self._describe()}", database=self.database):
            con = self._connection()
            predicate, params = self._cursor_predicate(con, state)
            return int(con.execute(f"SELECT count(*) FROM ({self._relation()}{predicate})", params).fetchall()[0][0])

    def get_schema(self) -> pa.Schema | None:
        """The Arrow schema of the source's rows, or of the destination table (None before it exists)."""
        with driver.translating(f"read the schema of {self._describe()}", database=self.database):
            con = self._connection()
            if self._is_destination and table_columns(con, self.qualified_table) is None:
                return None
            _use_utc(con)
            return con.sql(self._relation() + " LIMIT 0").to_arrow_table().schema

    def test_connection(self) -> None:
        """A source: the file opens and the table or query binds. A destination: the file opens."""
        if self._is_destination:
            self.table  # noqa: B018 - raises the "needs table" error
            driver.require_parent_dir(self.config.database)
            if self.config.database != driver.MEMORY and not os.path.exists(self.database):
                return  # created on the first run
        else:
            driver.require_existing_file(self.config.database)
        with driver.translating(f"open {self._describe()}", database=self.database):
            con = self._connection()
            if not self._is_destination:
                con.execute(f"DESCRIBE {self._relation()}").fetchall()

    # -- destination ------------------------------------------------------------------------
    #: The mapping between portable and DuckDB types (``types.PORTABLE_TYPES``), for the schema gate.
    schema_types = PORTABLE_TYPES

    @property
    def schema_target(self) -> str:
        """The destination table, as the schema gate's DDL names it."""
        return str(self.table)

    def current_schema(self) -> pa.Schema | None:
        """The destination table's schema now, or None before it exists (for the schema gate)."""
        return self.get_schema() if self._is_destination else None

    def check_schema(self, schema: pa.Schema) -> list[str]:
        """Problems loading rows of ``schema`` into the table would hit (``dataloader check``)."""
        problems = []
        present = {name.lower() for name in schema.names}
        if self.config.write_mode == "merge":
            missing = [key for key in self.config.merge_keys if key.lower() not in present]
            if missing:
                problems.append(f"merge key column(s) {', '.join(missing)} are not in the source's columns")
        unstorable = unstorable_columns(schema, self.table)
        problems += [str(error) for error in unstorable]
        if unstorable:
            return problems  # DuckDB cannot even describe such a schema
        with driver.translating(f"check the columns of {self._describe()}", table=str(self.table)):
            con = self._connection()
            existing = table_columns(con, self.qualified_table)
            if existing is not None:
                problems += [str(error) for error in type_conflicts(self.qualified_table, existing, arrow_columns(con, schema))]
        return problems

    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        if mode not in self.capabilities.write_modes:
            raise ConnectorError(
                f"write_mode {mode!r} is not supported by duckdb; use one of: "
                + ", ".join(sorted(self.capabilities.write_modes)),
                write_mode=mode,
            )
        check_merge_keys(mode, self.config.merge_keys, table=str(self.table))
        con = self._connection()
        with self._writing(f"start loading {self._describe()}"):
            target = self.qualified_table
        load = StagedLoad(con, target, mode, self.config.merge_keys, memory=self._memory, scratch_schema=self._home[1])
        self._load = load
        with self._writing(f"start loading {self._describe()}"):
            try:
                load.begin(schema)
            except BaseException:
                self.abort()
                raise

    def _writing(self, action: str) -> contextlib.AbstractContextManager[None]:
        """Translate DuckDB errors while writing; an out-of-memory error says which key to raise."""
        return driver.translating(action, out_of_memory=self._memory_advice(), table=str(self.table))

    def _memory_advice(self) -> str:
        limit = self.config.memory_limit
        now = f", {self._memory.bytes / 1024**2:,.0f} MiB at this point" if self._memory and self._memory.bytes else ""
        spill = f"; DuckDB spills to {self._temp_directory}, which needs free disk space" if self._temp_directory else ""
        return (
            f"raise destination.memory_limit in the recipe (it is {limit!r}{now}), e.g. 'memory_limit: 2GB', "
            f"or set it to null for DuckDB's default (80 % of RAM){spill}"
        )

    def write_batch(self, batch: Batch, state: State) -> None:
        if self._load is None:
            raise ConnectorError("write_batch called before begin", table=str(self.table))
        with self._writing(f"stage rows for {self._describe()}"):
            # One record batch even when the engine joined the source's small batches without copying:
            # DuckDB's parallel insert hands out whole batches to its threads, and 2M rows in CSV
            # blocks of ~5k rows went in ~0.1 s slower than the same rows in batches of 100k.
            self._load.write(batch.to_arrow())

    def commit(self, state: State) -> None:
        if self._load is None:
            raise ConnectorError("commit called before begin", table=str(self.table))
        with self._writing(f"commit the load into {self._describe()}"):
            record = CommitRecord.for_commit(
                self.context.recipe_name, self.context.run_id, state, self.context.extras.get("published")
            )
            self._load.commit(record)
        self._load = None

    def abort(self) -> None:
        load, self._load = self._load, None
        if load is not None:
            with self._writing(f"roll back the load into {self._describe()}"):
                load.abort()

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        """The commit record (``CommitRecord.to_dict()``) the last commit of ``recipe_name`` stored with its rows.

        Read on a connection of its own, which sees only what is committed, never this run's open
        transaction.
        """
        if self.config.database != driver.MEMORY and not os.path.exists(self.database) and self._con is None:
            return None
        with driver.translating(f"read the commit record of '{recipe_name}' in {self.database}", database=self.database):
            con = self._con.cursor() if self._con is not None else driver.connect(self.config.database, read_only=True)
            try:
                record = read_record(con, recipe_name)
            finally:
                con.close()
        return record.to_dict() if record is not None else None

    # -- the per-recipe lock ----------------------------------------------------------------
    def acquire_lock(self, recipe_name: str, holder: LeaseHolder) -> None:
        """Hold ``recipe_name`` on this database file until :meth:`release_lock` or :meth:`close`.

        Across processes DuckDB's own file lock already keeps the file to this run: the destination
        holds its read-write connection from ``open`` to ``close``, and another process cannot open
        the file meanwhile (:func:`driver.connect` says who holds it). Within one process, where
        connections share one database, this registry refuses a second run of the same recipe.
        """
        key = (os.path.realpath(self.database), recipe_name)
        with _LOCKS_GUARD:
            other = _LOCKS.get(key)
            if other is not None and other != holder:
                raise LeaseHeldError(recipe_name, other, where=f"DuckDB database {self.database}")
            _LOCKS[key] = holder
        self._locked.add(recipe_name)

    def release_lock(self, recipe_name: str) -> None:
        key = (os.path.realpath(self.database), recipe_name)
        with _LOCKS_GUARD:
            _LOCKS.pop(key, None)
        self._locked.discard(recipe_name)


def _use_utc(con: Any) -> None:
    """Time-zone-aware timestamps come out in UTC, whatever the machine's zone (and no progress bar)."""
    con.execute("SET enable_progress_bar = false")
    try:
        con.execute("SET TimeZone = 'UTC'")
    except Exception:  # DuckDB without its ICU extension has no time zones to set
        pass


__all__ = ["DuckDBConnector"]
