"""The DuckDB connector: a source of Arrow record batches and a transactional destination.

As a source it streams a table or a query straight out of DuckDB as Arrow record batches, with
the incremental cursor applied as a parameterised ``>=`` predicate. As a destination it writes
through :class:`~dataloader_duckdb.writer.StagedLoad`: one transaction per run.

This module does not import ``duckdb``; building a connector does (so a missing driver is a clear
error naming the install command, and ``import dataloader_duckdb.plugin`` stays cheap).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from dataloader.batch import Batch
from dataloader.connector import BaseConnector, Capabilities
from dataloader.errors import ConnectorError

from dataloader_duckdb import driver
from dataloader_duckdb.config import DuckDBConfig
from dataloader_duckdb.names import TableName, quote_ident
from dataloader_duckdb.writer import StagedLoad, read_state

if TYPE_CHECKING:
    import pyarrow as pa
    from dataloader.state import State


class DuckDBConnector(BaseConnector):
    """Reads and writes one DuckDB table (or reads one query) in one database file."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        read=True,
        write=True,
        write_modes=frozenset({"append", "overwrite", "merge"}),
        incremental_strategies=frozenset({"cursor"}),
        transactional=True,
        types=frozenset(
            {
                "bool", "int8", "int16", "int32", "int64", "float32", "float64", "decimal", "string",
                "binary", "date", "time", "timestamp", "timestamp_tz", "list",
            }
        ),
        preserves_types=True,
        notes=("merge replaces the whole row of a matching key; NULL keys match each other",),
    )

    config: DuckDBConfig

    def __init__(self, config: DuckDBConfig) -> None:
        super().__init__(config)
        driver.load_driver()
        self._con: Any = None
        self._load: StagedLoad | None = None

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
    def _is_destination(self) -> bool:
        return self.context.role == "destination"

    def _describe_source(self) -> str:
        what = f"table {self.config.table}" if self.config.table else "the source query"
        return f"{what} in DuckDB database {self.database}"

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Check the database is reachable. A source connects on first use (see :meth:`_connection`)."""
        if self._is_destination:
            self.table  # noqa: B018 - raises the "needs table" error before anything is touched
            driver.require_parent_dir(self.config.database)
            self._con = driver.connect(self.config.database, read_only=False)
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
            else:
                driver.require_existing_file(self.config.database)
                self._con = driver.connect(self.config.database, read_only=True)
        return self._con

    def close(self) -> None:
        try:
            self.abort()
        finally:
            if self._con is not None:
                con, self._con = self._con, None
                con.close()

    # -- source -----------------------------------------------------------------------------
    def _relation(self) -> str:
        if self.config.query:
            query = self.config.query.strip().rstrip(";").strip()
            return f"SELECT * FROM ({query}) AS _dataloader_query"
        return f"SELECT * FROM {self.table.sql}"

    def _cursor_predicate(self, con: Any, state: State) -> tuple[str, list[Any]]:
        incremental = self.config.incremental
        if incremental is None or incremental.strategy != "cursor" or not incremental.cursor_column:
            return "", []
        start = state.cursor_value(incremental.cursor_column, incremental.initial_value)
        if start is None:
            return "", []
        column = self._find_column(con, incremental.cursor_column)
        return f" WHERE {quote_ident(column)} >= ?", [start]

    def _find_column(self, con: Any, wanted: str) -> str:
        names = [row[0] for row in con.execute(f"DESCRIBE {self._relation()}").fetchall()]
        for name in names:
            if name == wanted:
                return name
        for name in names:
            if name.lower() == wanted.lower():
                return name
        raise ConnectorError(
            f"cursor column {wanted!r} is not in {self._describe_source()}; columns: {', '.join(names)}",
            database=self.database,
            column=wanted,
        )

    def read_batches(self, state: State) -> Iterator[Batch]:
        with driver.translating(f"read {self._describe_source()}", database=self.database):
            # The engine reads in its own thread: give it a connection of its own to the same database.
            con = self._connection().cursor()
        try:
            with driver.translating(f"read {self._describe_source()}", database=self.database):
                _use_utc(con)
                predicate, params = self._cursor_predicate(con, state)
                reader = driver.arrow_reader(con, self._relation() + predicate, params, self.context.batch_size)
                for record_batch in reader:
                    if record_batch.num_rows:
                        yield Batch.from_arrow(record_batch)
        finally:
            con.close()

    def estimate_total_records(self, state: State) -> int | None:
        """Counts a table's rows (past the cursor); a query is not run twice just for a progress bar."""
        if self.config.query or self._is_destination:
            return None
        with driver.translating(f"count the rows of {self._describe_source()}", database=self.database):
            con = self._connection()
            predicate, params = self._cursor_predicate(con, state)
            return int(con.execute(f"SELECT count(*) FROM ({self._relation()}{predicate})", params).fetchall()[0][0])

    def get_schema(self) -> pa.Schema | None:
        """The Arrow schema of the source's rows, or of the destination table (None before it exists)."""
        with driver.translating(f"read the schema of {self._describe_source()}", database=self.database):
            con = self._connection()
            if self._is_destination and not self._table_exists(con):
                return None
            _use_utc(con)
            return con.sql(self._relation() + " LIMIT 0").to_arrow_table().schema

    def _table_exists(self, con: Any) -> bool:
        table = self.table
        schema_filter = "lower(schema_name) = lower(?)" if table.schema else "schema_name = current_schema()"
        params = [table.name] + ([table.schema] if table.schema else [])
        sql = (
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            f"AND lower(table_name) = lower(?) AND {schema_filter}"
        )
        return bool(con.execute(sql, params).fetchall()[0][0])

    def test_connection(self) -> None:
        """A source: the file opens and the table or query binds. A destination: the file opens."""
        if self._is_destination:
            self.table  # noqa: B018 - raises the "needs table" error
            driver.require_parent_dir(self.config.database)
            if self.config.database != driver.MEMORY and not _exists(self.database):
                return  # created on the first run
        else:
            driver.require_existing_file(self.config.database)
        with driver.translating(f"open {self._describe_source()}", database=self.database):
            con = self._connection()
            if not self._is_destination:
                con.execute(f"DESCRIBE {self._relation()}").fetchall()

    # -- destination ------------------------------------------------------------------------
    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        if mode not in self.capabilities.write_modes:
            raise ConnectorError(
                f"write_mode {mode!r} is not supported by duckdb; use one of: "
                + ", ".join(sorted(self.capabilities.write_modes)),
                write_mode=mode,
            )
        if mode == "merge" and not self.config.merge_keys:
            raise ConnectorError(
                f"write_mode 'merge' into {self.table} needs merge_keys: the columns that identify a row",
                table=str(self.table),
            )
        load = StagedLoad(self._connection(), self.table, mode, self.config.merge_keys)
        self._load = load
        with driver.translating(f"start loading {self._describe_source()}", table=str(self.table)):
            try:
                load.begin(schema)
            except BaseException:
                self.abort()
                raise

    def write_batch(self, batch: Batch, state: State) -> None:
        if self._load is None:
            raise ConnectorError("write_batch called before begin", table=str(self.table))
        with driver.translating(f"stage rows for {self._describe_source()}", table=str(self.table)):
            self._load.write(batch.to_arrow())

    def commit(self, state: State) -> None:
        if self._load is None:
            raise ConnectorError("commit called before begin", table=str(self.table))
        with driver.translating(f"commit the load into {self._describe_source()}", table=str(self.table)):
            self._load.commit(self.context.recipe_name, self.context.run_id, state.to_dict())
        self._load = None

    def abort(self) -> None:
        load, self._load = self._load, None
        if load is not None:
            with driver.translating(f"roll back the load into {self._describe_source()}", table=str(self.table)):
                load.abort()

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        """The run id and state the last committed run of ``recipe_name`` stored with its rows."""
        if self.config.database != driver.MEMORY and not _exists(self.database) and self._con is None:
            return None
        with driver.translating(f"read the committed state of '{recipe_name}' in {self.database}"):
            if self._con is not None:
                return read_state(self._con, recipe_name)
            con = driver.connect(self.config.database, read_only=True)
            try:
                return read_state(con, recipe_name)
            finally:
                con.close()


def _use_utc(con: Any) -> None:
    """Time-zone-aware timestamps come out in UTC, whatever the machine's zone."""
    try:
        con.execute("SET TimeZone = 'UTC'")
    except Exception:  # DuckDB without its ICU extension has no time zones to set
        pass


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


__all__ = ["DuckDBConnector"]
