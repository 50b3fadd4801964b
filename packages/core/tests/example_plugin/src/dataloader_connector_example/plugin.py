"""Written from the public contract only: a Connector, a pydantic config, one hook."""

from __future__ import annotations

import json
from pathlib import Path

from dataloader import Batch, hookimpl
from pydantic import BaseModel, ConfigDict


class ExampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = "example"
    rows: int = 0
    path: str | None = None
    write_mode: str = "append"


class ExampleConnector:
    """Source: ``rows`` numbered rows. Destination: appends JSON lines to ``path``."""

    def __init__(self, config: ExampleConfig) -> None:
        self.config = config

    def read_batches(self, state):
        rows = [[i, f"row {i}"] for i in range(self.config.rows)]
        for start in range(0, len(rows), 10):
            yield Batch.from_rows(["n", "label"], rows[start : start + 10])

    def write_batch(self, batch, state):
        with Path(self.config.path).open("a", encoding="utf-8") as out:
            for row in batch.to_dict()["rows"]:
                out.write(json.dumps(dict(zip(batch.columns, row, strict=True))) + "\n")


@hookimpl
def register_connectors(register):
    register("example", ExampleConnector, config=ExampleConfig)
