"""The ``bigquery`` connector: a source (Storage Read API) and a transactional destination."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from dataloader.batch import Batch, rechunk
from dataloader.config import check_merge_keys
from dataloader.connector import BaseConnector, Capabilities
from dataloader.errors import ConnectorError
from dataloader.run.ledger import CommitRecord, CommitRecordTable
from dataloader.state import State

from dataloader_bigquery import reader, types
from dataloader_bigquery.capabilities import CAPABILITIES
from dataloader_bigquery.client import Clients, translating
from dataloader_bigquery.config import BigQueryConfig
from dataloader_bigquery.writer import StagedWrite, quote


class BigQueryConnector(BaseConnector):
    """Reads a table or query into Arrow; writes each commit as a load job plus one transaction."""

    capabilities: ClassVar[Capabilities] = CAPABILITIES

    def __init__(self, config: BigQueryConfig) -> None:
        super().__init__(config)
        self.config: BigQueryConfig = config
        self._clients: Clients | None = None
        self._write: StagedWrite | None = None
        self._commits = 0

    # -- connections -------------------------------------------------------------------------
    @property
    def clients(self) -> Clients:
        if self._clients is None:
            self._clients = Clients(self.config)
        return self._clients

    def open(self) -> None:
        _ = self.clients

    def close(self) -> None:
        self.abort()
        clients, self._clients = self._clients, None
        if clients is not None:
            clients.close()

    def _table(self) -> tuple[str, str, str]:
        return self.config.table_parts(self.clients.project)

    # -- information -----------------------------------------------------------------------
    def test_connection(self) -> None:
        clients = self.clients
        if self.config.table:
            project, dataset, table = self._table()
            found = clients.get_table((project, dataset, table), f"looking up table {dataset}.{table}")
            if found is None and self.context.role == "source":
                raise ConnectorError(f"{clients.where()}: table {dataset}.{table} does not exist; check `table`")
        else:
            clients.submit_query(f"SELECT * FROM ({self.config.query}) LIMIT 0", {}, doing="checking the source query")

    def estimate_total_records(self, state: State) -> int | None:
        """The table's row count from its metadata (free); None for a query or an incremental read."""
        if self.config.query or self._cursor_start(state) is not None:
            return None
        found = self.clients.get_table(self._table(), "reading the table's metadata")
        return int(found.num_rows) if found is not None and found.num_rows is not None else None

    def get_schema(self) -> Any:
        if not self.config.table:
            return None
        found = self.clients.get_table(self._table(), "reading the table's schema")
        return types.arrow_schema(found.schema) if found is not None else None

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        """The commit record of ``recipe_name`` in the target's dataset, or None."""
        project, dataset, _ = self._table()
        clients = self.clients
        if clients.get_table((project, dataset, CommitRecordTable.TABLE), "looking up the commit-record table") is None:
            return None
        records = CommitRecordTable(quote(project, dataset, CommitRecordTable.TABLE), paramstyle="at", text_type="STRING")
        sql, params = records.read_statement(recipe_name)
        rows = clients.run_query(sql, params, doing="reading the committed state")
        with translating(self.config, "reading the committed state", clients.where()):
            first = next(iter(rows), None)
        found = records.parse(recipe_name, tuple(first.values()) if first is not None else None)
        return found.to_dict() if found is not None else None

    # -- reading ---------------------------------------------------------------------------
    def _cursor_start(self, state: State) -> Any:
        incremental = self.config.incremental
        if incremental is None or not incremental.cursor_column:
            return None
        return state.cursor_value(incremental.cursor_column, incremental.initial_value)

    def _order(self) -> list[str]:
        """The order a run that checkpoints needs (a resumed run skips committed rows by count)."""
        if not self.context.extras.get("ordered"):
            return []
        incremental = self.config.incremental
        keys = [incremental.cursor_column] if incremental is not None and incremental.cursor_column else []
        keys += [k for k in (incremental.primary_key or []) if k not in keys] if incremental is not None else []
        return keys

    def read_batches(self, state: State) -> Iterator[Batch]:
        start = self._cursor_start(state)
        order = self._order()
        if self.config.table and start is None and not order:
            batches = reader.read_table(self.clients, self._table(), self.context.parallelism)
        else:
            relation = quote(*self._table()) if self.config.table else f"({self.config.query})"
            conditions, params = [], {}
            if start is not None:
                assert self.config.incremental is not None and self.config.incremental.cursor_column
                conditions.append(f"{quote(self.config.incremental.cursor_column)} >= @cursor_start")
                params["cursor_start"] = start
            sql = reader.select_sql(relation, conditions, order)
            batches = reader.read_query(self.clients, sql, params, 1 if order else self.context.parallelism)
        yield from rechunk((Batch.from_arrow(b) for b in batches), self.context.batch_size)

    # -- writing ---------------------------------------------------------------------------
    def begin(self, schema: Any, mode: str, state: State) -> None:
        if not self.config.table:
            raise ConnectorError("a bigquery destination needs `table` (dataset.table), not `query`")
        check_merge_keys(mode, self.config.merge_keys)
        self.abort()  # a write begun and never committed or aborted
        self._commits += 1
        write = StagedWrite(self.clients, self._table(), mode, list(self.config.merge_keys), self._commits)
        try:
            write.begin(schema)
        except BaseException:
            write.discard()
            raise
        self._write = write

    def write_batch(self, batch: Batch, state: State) -> None:
        if self._write is None:
            raise ConnectorError("write_batch called before begin()")
        self._write.write(batch.to_arrow())

    def commit(self, state: State) -> None:
        if self._write is None:
            raise ConnectorError("commit called before begin()")
        write, self._write = self._write, None
        record = CommitRecord.for_commit(
            self.context.recipe_name, self.context.run_id, state, published=self._published(write)
        )
        write.publish(record, {"partition_by": self.config.partition_by, "cluster_by": self.config.cluster_by})

    def _published(self, write: StagedWrite) -> dict[str, Any]:
        published = dict(self.context.extras.get("published") or {})
        published.setdefault("rows", write.rows)
        published.setdefault("mode", write.mode)
        return published

    def abort(self) -> None:
        write, self._write = self._write, None
        if write is not None:
            write.discard()
