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
