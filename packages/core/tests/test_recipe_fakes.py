"""A tiny in-test plugin for the recipe and CLI tests: a "memory" connector and a transform.

The connector is the contract kit's in-memory connector (``dataloader.testing.MemoryConnector``):
it keeps tables in a module-level dict so a test can load rows into a source table and look at what
a run wrote. It is registered explicitly through a PluginHost (no entry points), so
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
from dataloader.connector import Capabilities
from dataloader.plugins import PluginHost, use_host
from dataloader.state import State
from dataloader.testing import MEMORY_TABLES
from dataloader.testing import MemoryConnector as KitMemoryConnector
from pydantic import Field

#: The kit's memory tables: what the "memory" connector reads and writes.
TABLES = MEMORY_TABLES


class MemoryConfig(ConnectorConfig):
    table: str
    port: int = 0
    password: str | None = None
    api_key: str | None = None


class MemoryConnector(KitMemoryConnector):
    """The kit's in-memory connector (``dataloader.testing``), under the name ``memory``, with an estimate."""

    def estimate_total_records(self, state: State) -> int | None:
        table = self._table()
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
