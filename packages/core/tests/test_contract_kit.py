"""The contract test kit, run against a small connector that lives only in these tests.

``ShelfConnector`` keeps Arrow tables on a dict "shelf", filters by the incremental cursor like a
database would, and stages writes until commit. If the kit's suite passes against it, the suite's
expectations are consistent with the engine's behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dataloader import hookimpl
from dataloader.batch import Batch
from dataloader.config import ConnectorConfig
from dataloader.connector import BaseConnector, Capabilities
from dataloader.run.ledger import CommitRecord
from dataloader.state import State
from dataloader.testing import ConnectorContractSuite

SHELF: dict[str, pa.Table] = {}
RECORDS: dict[str, dict[str, Any]] = {}


class ShelfConfig(ConnectorConfig):
    name: str


class ShelfConnector(BaseConnector):
    capabilities = Capabilities.committing()

    def read_batches(self, state: State) -> Iterator[Batch]:
        table = SHELF[self.config.name]
        incremental = self.config.incremental
        if incremental is not None:
            start = state.cursor_value(incremental.cursor_column, incremental.initial_value)
            if start is not None:
                column = table.column(incremental.cursor_column)
                table = table.filter(pc.greater_equal(column, pa.scalar(start, column.type)))
        for record_batch in table.to_batches(max_chunksize=2):
            yield Batch.from_arrow(record_batch)

    def begin(self, schema: Any, mode: str, state: State) -> None:
        self.mode, self.staged = mode, []

    def write_batch(self, batch: Batch, state: State) -> None:
        self.staged.append(batch.to_arrow())

    def commit(self, state: State) -> None:
        record = CommitRecord.for_commit(self.context.recipe_name, self.context.run_id, state, self.context.extras.get("published"))
        RECORDS[f"{self.config.name}/{self.context.recipe_name}"] = record.to_dict()
        if not self.staged:
            return
        new = pa.Table.from_batches(self.staged)
        old = SHELF.get(self.config.name)
        if old is not None and self.mode == "append":
            new = pa.concat_tables([old, new])
        elif old is not None and self.mode == "merge":
            keys = self.config.merge_keys[0]
            # last row wins: keep the last occurrence of each key among the new rows
            reversed_new = new.take(pa.array(range(new.num_rows - 1, -1, -1)))
            index = pa.array(range(reversed_new.num_rows))
            firsts = pa.table({"k": reversed_new.column(keys), "i": index}).group_by("k").aggregate([("i", "min")])
            new = reversed_new.take(firsts.column("i_min"))
            kept = old.filter(pc.invert(pc.is_in(old.column(keys), value_set=new.column(keys))))
            new = pa.concat_tables([kept, new.cast(kept.schema)])
        SHELF[self.config.name] = new

    def abort(self) -> None:
        self.staged = []

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        return RECORDS.get(f"{self.config.name}/{recipe_name}")


class ShelfPlugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("shelf", ShelfConnector, config=ShelfConfig)


class ShelfTarget:
    #: The shelf lives in this process only.
    out_of_process = False

    def __init__(self) -> None:
        SHELF.clear()
        RECORDS.clear()

    def source_section(self, table: pa.Table) -> dict[str, Any]:
        SHELF["source"] = table
        return {"type": "shelf", "name": "source"}

    def append_source(self, table: pa.Table) -> None:
        SHELF["source"] = pa.concat_tables([SHELF["source"], table])

    def destination_section(self) -> dict[str, Any]:
        return {"type": "shelf", "name": "target"}

    def read_destination(self) -> pa.Table | None:
        return SHELF.get("target")


class TestShelfContract(ConnectorContractSuite):
    connector_type = "shelf"
    plugins = (ShelfPlugin(),)

    @pytest.fixture
    def contract_target(self):
        return ShelfTarget()
