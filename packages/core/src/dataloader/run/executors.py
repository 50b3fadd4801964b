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

A remote executor, whose workers are other processes or machines, uses instead:

- ``job.task(partition, staging)``: a small, serialisable :class:`~dataloader.run.remote.PartitionTask`
  for a worker, which runs it with :func:`dataloader.run.remote.process_partition` (the recipe is
  rebuilt there; rows are staged as Parquet under ``staging``, a folder or fsspec URL);
- ``job.publish(result, staging)``: on the driver, write a finished partition's staged rows
  through ``job.write`` and fold in its counters, rejected rows and cursor mark;
- ``job.after_commit``: callables the engine calls once the run committed (clean staging there);
- ``job.note(message)``: a line for the user (an ``info`` event), such as a dashboard link.

The ``local`` executor gets the source's partitions only with ``runtime.parallelism`` above 1
(it then reads that many at once); otherwise the one partition that stands for the whole source.

The built-in ``local`` executor runs the whole source in this process, a reader thread feeding the
engine's thread through a bounded queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    #: The run's start state (a dict), what every partition's cursor filter compares with.
    state: dict[str, Any] = field(default_factory=dict)
    #: Driver side of a remote executor: write a finished partition's staged rows (see the module doc).
    publish: Callable[[Any, str], None] | None = None
    #: Called, in order, after the run committed.
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    #: Tell the user something (a dashboard link): an ``info`` event of the run.
    note: Callable[[str], None] = lambda message: None
    #: ``process`` for several partitions read ``workers`` at a time in threads of this process
    #: (their batches interleave; cursor, steps and checks run in the caller's thread).
    process_concurrently: Callable[[list[Partition], int], Iterator[Batch]] | None = None

    def task(self, partition: Partition, staging: str) -> Any:
        """A serialisable description of ``partition`` for a worker (``dataloader.run.remote``)."""
        from dataloader.run.remote import PartitionTask

        return PartitionTask(recipe=self.recipe, run_id=self.run_id, state=self.state, partition=partition, staging=staging)


@runtime_checkable
class Executor(Protocol):
    """Runs a :class:`Job`: every partition processed, every ready batch written through ``job.write``."""

    def run(self, job: Job) -> None: ...


class LocalExecutorConfig(ConfigModel):
    """The ``local`` executor has no options."""


class LocalExecutor:
    """Everything in this process: partitions one after another, batches in the source's order;
    with ``runtime.parallelism`` above 1, that many partitions are read at once (in threads)."""

    def __init__(self, config: LocalExecutorConfig | None = None) -> None:
        self.config = config

    def run(self, job: Job) -> None:
        partitions = job.partitions()
        workers = min(int(getattr(job.recipe.runtime, "parallelism", 1) or 1), len(partitions))
        if workers > 1 and job.process_concurrently is not None:
            for batch in job.process_concurrently(partitions, workers):
                job.write(batch)
            return
        for partition in partitions:
            for batch in job.process(partition):
                job.write(batch)


__all__ = ["Executor", "Job", "LocalExecutor", "LocalExecutorConfig", "WHOLE"]
