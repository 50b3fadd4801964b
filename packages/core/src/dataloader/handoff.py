"""Handing items from the caller's thread to one worker thread, through a bounded queue.

Destinations that stream (a DuckDB ``INSERT ... SELECT`` over a ``RecordBatchReader``, a
PostgreSQL ``COPY ... FROM STDIN``) run the driver call on a worker thread that pulls the batches
the engine's thread hands over. :class:`Handoff` is that channel:

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
from collections.abc import Callable
from typing import Any

from dataloader.errors import ConnectorError

#: Handed to the worker after the last item.
END = object()
_CANCEL = object()
#: Seconds between looks at whether the worker is still alive while the queue is full.
POLL_S = 0.05


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
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
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
        while True:
            if not self.alive:
                self._raise_ended()
            try:
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue  # the worker is busy with earlier items

    def finish(self) -> None:
        """Hand over :data:`END`, wait for the worker, raise its error if it failed."""
        while self.alive:
            try:
                self._queue.put(END, timeout=POLL_S)
                break
            except queue.Full:
                continue
        self.join()
        if self.error is not None or not self._took_end:
            self._raise_ended()

    def cancel(self, timeout: float | None = None) -> bool:
        """Drop what is queued and make the worker's next ``get`` raise; True once it has ended."""
        if self._thread is None:
            return True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(_CANCEL)  # there is room: only the caller's thread adds items
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
        item = self._queue.get()
        if item is _CANCEL:
            raise HandoffCancelled("the load was aborted")
        if item is END:
            self._took_end = True
        return item


__all__ = ["END", "Handoff", "HandoffCancelled"]
