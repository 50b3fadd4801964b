"""A contract-suite target on the emulator: seeds source tables and reads the destination table
through the connector's own write and read paths."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from dataloader.batch import Batch
from dataloader.connector import RunContext
from dataloader.state import State
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.connector import SnowflakeConnector
from dataloader_snowflake.names import quote
from dataloader_snowflake.types import column_ddl


def connector(section: dict[str, Any], role: str = "destination") -> SnowflakeConnector:
    built = SnowflakeConnector(SnowflakeConfig.model_validate(section))
    built.context = RunContext(recipe_name="test-seed", run_id=f"seed-{uuid.uuid4().hex[:8]}", role=role)
    return built


def write_rows(section: dict[str, Any], data: pa.Table, mode: str = "append") -> None:
    with connector(section) as destination:
        destination.begin(data.schema if data.num_rows else None, mode, State())
        for batch in data.to_batches():
            destination.write_batch(Batch.from_arrow(batch), State())
        destination.commit(State())


def create_table(section: dict[str, Any], schema: pa.Schema) -> None:
    with connector(section) as destination:
        columns = ", ".join(column_ddl(f) for f in schema)
        destination._run(f"CREATE TABLE {destination.table().sql()} ({columns})", None, "creating a test table")


def read_table(section: dict[str, Any]) -> pa.Table | None:
    with connector(section, role="source") as source:
        table = source.table()
        found = source._run(
            f"SELECT COUNT(*) FROM {quote(table.database or '')}.INFORMATION_SCHEMA.TABLES "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (table.schema, table.table),
            "looking for a test table",
        )
        if not found or not found[0][0]:
            return None
        schema = source.get_schema()
        batches = [b.to_arrow() for b in source.read_batches(State())]
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


class SnowflakeTarget:
    def __init__(self, section: Callable[..., dict[str, Any]]) -> None:
        self.section = section
        self.source_table = ""
        self.destination_table = f'"contract_{uuid.uuid4().hex[:10]}"'

    def source_section(self, table: pa.Table) -> dict[str, Any]:
        self.source_table = f'"contract_src_{uuid.uuid4().hex[:10]}"'
        create_table(self.section(table=self.source_table), table.schema)
        if table.num_rows:
            write_rows(self.section(table=self.source_table), table)
        return self.section(table=self.source_table)

    def append_source(self, table: pa.Table) -> None:
        write_rows(self.section(table=self.source_table), table)

    def destination_section(self) -> dict[str, Any]:
        return self.section(table=self.destination_table)

    def read_destination(self) -> pa.Table | None:
        return read_table(self.section(table=self.destination_table))
