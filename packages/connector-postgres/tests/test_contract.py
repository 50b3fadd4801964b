"""The core's connector contract suite, run against a real PostgreSQL database."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pytest
from dataloader.batch import Batch
from dataloader.run.ledger import CommitRecord
from dataloader.state import State
from dataloader.testing import ConnectorContractSuite
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector


class PostgresTarget:
    """Seeds source tables and reads the destination table, through the connector's own COPY paths."""

    def __init__(self, section: Any) -> None:
        self.section = section
        self.source_table = ""
        self.destination_table = f"contract_{uuid.uuid4().hex[:10]}"

    def _connector(self, table: str) -> PostgresConnector:
        return PostgresConnector(PostgresConfig.model_validate(self.section(table=table)))

    def _write(self, table: str, data: pa.Table) -> None:
        with self._connector(table) as destination:
            destination.begin(data.schema if data.num_rows else None, "append", State())
            for batch in data.to_batches():
                destination.write_batch(Batch.from_arrow(batch), State())
            destination.commit(State())

    def source_section(self, table: pa.Table) -> dict[str, Any]:
        self.source_table = f"contract_src_{uuid.uuid4().hex[:10]}"
        if table.num_rows == 0:
            # begin(None) creates nothing; an empty source is an existing table without rows.
            with self._connector(self.source_table) as destination:
                from dataloader_postgres.writer import StagedWrite

                write = StagedWrite(destination.conn, "public", self.source_table, "append", [])
                write.begin(table.schema)
                write.publish(CommitRecord.for_commit("contract-seed", "seed", {}))
                destination.conn.commit()
        else:
            self._write(self.source_table, table)
        return self.section(table=self.source_table)

    def append_source(self, table: pa.Table) -> None:
        self._write(self.source_table, table)

    def destination_section(self) -> dict[str, Any]:
        return self.section(table=self.destination_table)

    def read_destination(self) -> pa.Table | None:
        with self._connector(self.destination_table) as source:
            with source.conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (f'public."{self.destination_table}"',))
                if cur.fetchone()[0] is None:
                    return None
            schema = source.get_schema()
            batches = [b.to_arrow() for b in source.read_batches(State())]
        return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


class TestContract(ConnectorContractSuite):
    connector_type = "postgres"

    @pytest.fixture
    def contract_target(self, section: Any) -> PostgresTarget:
        return PostgresTarget(section)
