"""The reading side of the pipeline: the source's batches through a bounded queue.

The source runs in a reader thread; the caller's thread gets its batches through a queue of
``runtime.queue_size``, which is what keeps memory flat. Re-chunking lives with the batch
(:func:`dataloader.batch.rechunk`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from dataloader.batch import Batch
from dataloader.errors import ConnectorError, DataLoaderError
from dataloader.handoff import iterate_in_thread, iterate_in_threads


def read_in_thread(produce: Callable[[], Any], queue_size: int) -> Iterator[Batch]:
    """Run ``produce()`` (a source's read) in a thread; yield its batches through a bounded queue.

    The bound is what keeps memory flat: the reader blocks when the writer falls behind. When the
    consumer stops early (a failed write), the reader is told to stop and its generator is closed.
    The channel is the core's one (:func:`dataloader.handoff.iterate_in_thread`).
    """

    def batches() -> Iterator[Batch]:
        for batch in produce():
            yield batch if isinstance(batch, Batch) else Batch.from_arrow(batch)

    try:
        yield from iterate_in_thread(batches, queue_size, name="dataloader-reader")
    except DataLoaderError:
        raise
    except Exception as exc:
        raise ConnectorError(f"reading the source failed: {type(exc).__name__}: {exc}") from exc


def read_partitions(producers: list[Callable[[], Any]], workers: int, queue_size: int) -> Iterator[Batch]:
    """Run several partitions' reads, ``workers`` at a time, in threads; yield their batches as they come.

    One bounded channel serves them all (:func:`dataloader.handoff.iterate_in_threads`), so memory
    stays flat whatever the number of partitions. Batches of one partition keep their order; batches
    of different partitions interleave. The first failure stops every reader and is raised here.
    """
    if workers <= 1 or len(producers) <= 1:
        for produce in producers:
            yield from read_in_thread(produce, queue_size)
        return
    try:
        for batch in iterate_in_threads(producers, queue_size, workers=workers, name="dataloader-reader"):
            yield batch if isinstance(batch, Batch) else Batch.from_arrow(batch)
    except DataLoaderError:
        raise
    except Exception as exc:
        raise ConnectorError(f"reading the source failed: {type(exc).__name__}: {exc}") from exc


__all__ = ["read_in_thread", "read_partitions"]
