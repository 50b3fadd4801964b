"""The reading side of the pipeline: the source's batches through a bounded queue.

The source runs in a reader thread; the caller's thread gets its batches through a queue of
``runtime.queue_size``, which is what keeps memory flat. Re-chunking lives with the batch
(:func:`dataloader.batch.rechunk`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from dataloader.batch import Batch
from dataloader.errors import ConnectorError, DataLoaderError

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read_in_thread(produce: Callable[[], Any], queue_size: int) -> Iterator[Batch]:
    """Run ``produce()`` (a source's read) in a thread; yield its batches through a bounded queue.

    The bound is what keeps memory flat: the reader blocks when the writer falls behind. When the
    consumer stops early (a failed write), the reader is told to stop and its generator is closed.
    """
    channel: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        iterator = None
        try:
            iterator = iter(produce())
            for batch in iterator:
                if not isinstance(batch, Batch):
                    batch = Batch.from_arrow(batch)
                if not put(batch):
                    break
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    pass

    thread = threading.Thread(target=reader, name="dataloader-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                exc = item.exc
                if isinstance(exc, DataLoaderError):
                    raise exc
                raise ConnectorError(f"reading the source failed: {type(exc).__name__}: {exc}") from exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


__all__ = ["read_in_thread"]


def read_partitions(producers: list[Callable[[], Any]], workers: int, queue_size: int) -> Iterator[Batch]:
    """Run several partitions' reads, ``workers`` at a time, in threads; yield their batches as they come.

    One bounded queue serves them all, so memory stays flat whatever the number of partitions.
    Batches of one partition keep their order; batches of different partitions interleave. The
    first failure stops every reader and is raised in the caller's thread.
    """
    if workers <= 1 or len(producers) <= 1:
        for produce in producers:
            yield from read_in_thread(produce, queue_size)
        return
    channel: queue.Queue[Any] = queue.Queue(maxsize=max(queue_size, workers))
    todo: queue.Queue[Callable[[], Any]] = queue.Queue()
    for produce in producers:
        todo.put(produce)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            while not stop.is_set():
                try:
                    produce = todo.get_nowait()
                except queue.Empty:
                    break
                iterator = iter(produce())
                try:
                    for batch in iterator:
                        if not put(batch if isinstance(batch, Batch) else Batch.from_arrow(batch)):
                            return
                finally:
                    close = getattr(iterator, "close", None)
                    if callable(close):
                        close()
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            put(_Failure(exc))
        finally:
            put(_END)

    threads = [threading.Thread(target=reader, name=f"dataloader-reader-{i}", daemon=True) for i in range(min(workers, len(producers)))]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = channel.get()
            if item is _END:
                running -= 1
                continue
            if isinstance(item, _Failure):
                exc = item.exc
                if isinstance(exc, DataLoaderError):
                    raise exc
                raise ConnectorError(f"reading the source failed: {type(exc).__name__}: {exc}") from exc
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
