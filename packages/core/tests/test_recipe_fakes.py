"""A tiny in-test plugin for the recipe and CLI tests: a "memory" connector and a transform.

The connector keeps tables in a module-level dict so a test can load rows into a source table and
look at what a run wrote. It is registered explicitly through a PluginHost (no entry points), so
these tests never depend on which connector packages happen to be installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from dataloader import hookimpl
from dataloader.batch import Batch
from dataloader.config import ConfigModel, ConnectorConfig
from dataloader.connector import BaseConnector, Capabilities
from dataloader.plugins import PluginHost, use_host
from dataloader.state import State
from pydantic import Field

TABLES: dict[str, pa.Table] = {}


class MemoryConfig(ConnectorConfig):
    table: str
    port: int = 0
    password: str | None = None
    api_key: str | None = None


class MemoryConnector(BaseConnector):
    """Reads and writes Arrow tables held in ``TABLES``; writes become visible on commit."""

    capabilities = Capabilities(
        read=True,
        write=True,
        write_modes=frozenset({"append", "overwrite"}),
        incremental_strategies=frozenset({"cursor"}),
        transactional=True,
    )

    def read_batches(self, state: State) -> Iterator[Batch]:
        table = TABLES.get(self.config.table)
        if table is None:
            return
        for rb in table.to_batches():
            yield Batch.from_arrow(rb)

    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        self._pending: list[pa.RecordBatch] = []
        self._mode = mode

    def write_batch(self, batch: Batch, state: State) -> None:
        self._pending.append(batch.to_arrow())

    def commit(self, state: State) -> None:
        if not self._pending:
            return
        new = pa.Table.from_batches(self._pending)
        old = TABLES.get(self.config.table)
        TABLES[self.config.table] = new if self._mode == "overwrite" or old is None else pa.concat_tables([old, new])

    def abort(self) -> None:
        self._pending = []

    def estimate_total_records(self, state: State) -> int | None:
        table = TABLES.get(self.config.table)
        return table.num_rows if table is not None else 0


class ReadOnlyConnector(MemoryConnector):
    capabilities = Capabilities(read=True)


class UpperConfig(ConfigModel):
    columns: list[str] = Field(default_factory=list)


class Upper:
    """Upper-cases string columns (a transform that needs a config model)."""

    def __init__(self, config: UpperConfig) -> None:
        self.config = config

    def apply(self, batch: Batch) -> Batch:
        import pyarrow.compute as pc

        rb = batch.to_arrow()
        arrays = [
            pc.utf8_upper(col) if name in self.config.columns else col
            for name, col in zip(rb.schema.names, rb.columns, strict=True)
        ]
        return batch.replace(pa.RecordBatch.from_arrays(arrays, names=rb.schema.names))


class FakePlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("memory", MemoryConnector, config=MemoryConfig)
        register("readonly", ReadOnlyConnector, config=MemoryConfig)

    @hookimpl
    def register_transforms(self, register: Any) -> None:
        register("upper", Upper, config=UpperConfig)


def make_host() -> PluginHost:
    host = PluginHost(load_entrypoints=False)
    host.register(FakePlugin(), name="fake-memory", distribution="fake-memory-dist", version="9.9")
    return host


@pytest.fixture
def memory_host() -> Iterator[PluginHost]:
    """Install a host with only the built-ins and the fake plugin; restore the previous one after."""
    TABLES.clear()
    with use_host(make_host()) as host:
        yield host
    TABLES.clear()
