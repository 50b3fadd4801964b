"""Handing items between two threads through a bounded queue: the one channel of the engine.

:class:`Channel` is the bounded queue either side can close; both directions use it:

- **worker consumes** (:class:`Handoff`): destinations that stream that stream (a DuckDB ``INSERT ... SELECT`` over a ``RecordBatchReader``, a
PostgreSQL ``COPY ... FROM STDIN``) run the driver call on a worker thread that pulls the batches
the engine's thread hands over;
- **worker produces** (:func:`iterate_in_thread`): the engine reads a source on a reader thread and
  takes its batches in its own (``dataloader.run.pipeline.read_in_thread``), and a source that reads
  several partitions at once merges their producers' output the same way.

:class:`Handoff`:

- the caller ``put``s items; ``put`` blocks while the queue is full and raises the worker's
  exception as soon as the worker has ended, so a rejected row fails the next write at once;
- the worker ``get``s them; :data:`END` says there is no more, and ``get`` raises
  :class:`HandoffCancelled` once the caller has cancelled;
- ``finish`` hands over :data:`END`, waits for the worker and raises its exception;
- ``cancel`` drops what is queued, makes the worker's next ``get`` raise, and waits.

The bound is what keeps memory flat: at most ``capacity`` items wait besides the one the worker
holds.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from dataloader.errors import ConnectorError

#: Handed to the worker after the last item.
END = object()
_CANCEL = object()
#: Seconds between looks at whether the worker is still alive while the queue is full.
POLL_S = 0.05


class Channel:
    """A bounded queue between two threads; ``close`` tells the sending side to stop."""

    def __init__(self, capacity: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._closed = threading.Event()

    def send(self, item: Any, alive: Callable[[], bool] = lambda: True) -> bool:
        """Queue ``item``, waiting while the queue is full; False (not sent) once the channel is
        closed or ``alive()`` says the receiving side has gone."""
        while not self._closed.is_set() and alive():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def receive(self, timeout: float | None = None) -> Any:
        """The next item (blocking); ``queue.Empty`` after ``timeout`` seconds when one is given."""
        return self._queue.get(timeout=timeout)

    def drain(self) -> None:
        """Drop everything queued."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def put_now(self, item: Any) -> None:
        """Queue ``item`` without waiting (the caller knows there is room)."""
        self._queue.put_nowait(item)

    def close(self) -> None:
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


class _Failure:
    """A producer's exception, travelling to the consumer's thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def iterate_in_thread(
    produce: Callable[[], Any], capacity: int, *, name: str, join_timeout: float = 30.0
) -> Iterator[Any]:
    """Run ``iter(produce())`` on a worker thread; yield its items here, through a :class:`Channel`.

    The bound keeps memory flat: the producer waits when the consumer falls behind. The producer's
    exception is raised here, in the consumer's thread. When the consumer stops early (it raised,
    or closed this generator), the producer is told to stop, its iterator is closed, and this waits
    up to ``join_timeout`` seconds for it.
    """
    return iterate_in_threads([produce], capacity, workers=1, name=name, join_timeout=join_timeout)


def iterate_in_threads(
    producers: list[Callable[[], Any]], capacity: int, *, workers: int, name: str, join_timeout: float = 30.0
) -> Iterator[Any]:
    """Like :func:`iterate_in_thread` for several producers, ``workers`` of them at a time.

    One channel serves them all, so memory stays flat whatever their number. Items of one producer
    keep their order; items of different producers interleave. The first failure stops them all.
    """
    channel = Channel(max(capacity, workers))
    todo = list(reversed(producers))
    lock = threading.Lock()

    def next_producer() -> Callable[[], Any] | None:
        with lock:
            return todo.pop() if todo and not channel.closed else None

    def worker() -> None:
        try:
            while (produce := next_producer()) is not None:
                if not _drain_into(channel, produce):
                    return
        except BaseException as exc:  # raised again in the consumer's thread
            channel.send(_Failure(exc))
        finally:
            channel.send(END)

    threads = [
        threading.Thread(target=worker, name=f"{name}-{i}" if workers > 1 else name, daemon=True)
        for i in range(max(1, min(workers, len(producers))))
    ]
    return _consume(channel, threads, join_timeout)


def _drain_into(channel: Channel, produce: Callable[[], Any]) -> bool:
    """Send every item of ``produce()``; False when the consumer closed the channel."""
    iterator = iter(produce())
    try:
        return all(channel.send(item) for item in iterator)
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass


def _consume(channel: Channel, threads: list[threading.Thread], join_timeout: float) -> Iterator[Any]:
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = channel.receive()
            if item is END:
                running -= 1
                continue
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        channel.close()
        for thread in threads:
            thread.join(timeout=join_timeout)


class HandoffCancelled(Exception):
    """Raised by ``get`` in the worker once the caller has cancelled."""


class Handoff:
    """A bounded queue from the caller's thread to ``work``, run on a worker thread by ``start``."""

    def __init__(self, capacity: int, *, name: str, ended_early: str) -> None:
        self.name = name
        #: The message of the error ``put`` and ``finish`` raise when the worker ended before
        #: taking :data:`END` and without an exception of its own.
        self.ended_early = ended_early
        #: The worker's exception, once it has ended with one.
        self.error: BaseException | None = None
        self._channel = Channel(capacity)
        self._thread: threading.Thread | None = None
        self._took_end = False

    # -- the caller's side -----------------------------------------------------------------
    def start(self, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # raised again in the caller's thread by put/finish
                self.error = exc

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Queue ``item`` for the worker; raises the worker's error once it has ended."""
        if not self._channel.send(item, alive=lambda: self.alive):
            self._raise_ended()

    def finish(self) -> None:
        """Hand over :data:`END`, wait for the worker, raise its error if it failed."""
        self._channel.send(END, alive=lambda: self.alive)
        self.join()
        if self.error is not None or not self._took_end:
            self._raise_ended()

    def cancel(self, timeout: float | None = None) -> bool:
        """Drop what is queued and make the worker's next ``get`` raise; True once it has ended."""
        if self._thread is None:
            return True
        self._channel.drain()
        self._channel.put_now(_CANCEL)  # there is room: only the caller's thread adds items
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker (at most ``timeout`` seconds); True once it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _raise_ended(self) -> None:
        if self.error is not None:
            raise self.error
        raise ConnectorError(self.ended_early)

    # -- the worker's side -----------------------------------------------------------------
    def get(self) -> Any:
        """The next item, or :data:`END`; raises :class:`HandoffCancelled` after ``cancel``."""
        item = self._channel.receive()
        if item is _CANCEL:
            raise HandoffCancelled("the load was aborted")
        if item is END:
            self._took_end = True
        return item


__all__ = ["END", "Channel", "Handoff", "HandoffCancelled", "iterate_in_thread", "iterate_in_threads"]
