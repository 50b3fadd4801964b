"""Executors: what runs a recipe's pipeline for the engine.

The engine owns the commit protocol (leases, the commit record, checkpoints); an executor owns
*where* the rows are produced. It is handed a :class:`Job`:

- ``job.partitions()``: the source's partitions (``Partitions`` protocol), or one partition that
  stands for the whole source;
- ``job.process(partition)``: read that partition and put it through the cursor filter, the
  transform steps and the quality checks; yields batches ready to write. A remote executor calls
  it where it likes (it needs only the recipe);
- ``job.write(batch)``: hand a ready batch to the destination, on the driver, inside the run's
  transaction (and checkpoint when due).

The built-in ``local`` executor runs the whole source in this process, a reader thread feeding the
engine's thread through a bounded queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from dataloader.batch import Batch
from dataloader.config import ConfigModel
from dataloader.connector import Partition

#: The partition that stands for a whole, unpartitioned source.
WHOLE = Partition(name="all")


@dataclass
class Job:
    """One attempt of a run, as an executor sees it."""

    recipe: Any
    run_id: str
    partitions: Callable[[], list[Partition]]
    process: Callable[[Partition], Iterator[Batch]]
    write: Callable[[Batch], None]


@runtime_checkable
class Executor(Protocol):
    """Runs a :class:`Job`: every partition processed, every ready batch written through ``job.write``."""

    def run(self, job: Job) -> None: ...


class LocalExecutorConfig(ConfigModel):
    """The ``local`` executor has no options."""


class LocalExecutor:
    """Everything in this process, partitions one after another, batches in the source's order."""

    def __init__(self, config: LocalExecutorConfig | None = None) -> None:
        self.config = config

    def run(self, job: Job) -> None:
        for partition in job.partitions():
            for batch in job.process(partition):
                job.write(batch)


__all__ = ["Executor", "Job", "LocalExecutor", "LocalExecutorConfig", "WHOLE"]
