"""One ``COPY ... FROM STDIN`` fed with encoded batches while it runs.

psycopg2's ``copy_expert`` pulls its input by calling ``read(size)`` on the object it is given
and sends whatever bytes come back; ``b""`` ends the COPY, an exception fails it. A
:class:`CopyInStream` runs ``copy_expert`` on a helper thread with itself as that object, and its
``read`` hands over the batches the caller queues with :meth:`CopyInStream.send`. So the caller
encodes batch N+1 while the server ingests batch N, one COPY carries a whole run, and the bounded
queue keeps at most ``CAPACITY`` encoded batches waiting besides the one being sent.

A libpq connection must not be used by two threads at once: while a stream runs, nothing else
may touch its connection. :meth:`~CopyInStream.finish` ends the COPY, waits for the server and
re-raises the driver's error if it rejected the data; :meth:`~CopyInStream.abort` makes ``read``
fail so the server drops the COPY (cancelling it on the server when the thread does not get to
``read`` in time), and waits. Neither commits anything: the rows live in the caller's open
transaction, so an abort, a rollback or a killed process leaves the table as it was.

The server reports a rejected row only when the COPY ends, not while data flows. So that a bad
row fails the run at once instead of after everything has been sent, ``read`` looks whether the
server has said anything before taking the next batch and, if so, ends the COPY to hear it: an
error then surfaces from the next ``send``; anything else (a notice) is harmless and the rows
continue in a new COPY.
"""

from __future__ import annotations

import queue
import select
import threading
from typing import Any

#: Encoded batches waiting for the COPY thread (the caller blocks when they are this many).
CAPACITY = 2
#: Seconds between looks at whether the COPY thread is still alive while the queue is full.
_POLL = 0.05
#: Seconds ``abort`` waits for the COPY thread before cancelling the COPY on the server, and
#: after that before giving up on the thread (and its connection).
_CANCEL_AFTER = 2.0
_GIVE_UP_AFTER = 30.0

_END = object()
_ABORT = object()


class CopyAborted(Exception):
    """Raised inside ``read`` so that psycopg2 fails the COPY (the server keeps no row of it)."""


class CopyInStream:
    """``statement`` (a ``COPY ... FROM STDIN``) running on ``conn`` until finished or aborted."""

    def __init__(self, conn: Any, statement: str, columns: tuple[str, ...]) -> None:
        self.conn, self.statement, self.columns = conn, statement, columns
        #: The driver's exception once the COPY has failed.
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=CAPACITY)
        self._ended = False
        self._sent_in_copy = 0
        self._socket = conn.fileno()
        self._thread = threading.Thread(target=self._run, name="dataloader-postgres-copy-in", daemon=True)
        self._thread.start()

    # -- the caller's side -----------------------------------------------------------------
    def send(self, chunk: bytes) -> None:
        """Queue ``chunk`` (whole CSV lines) for the COPY; raises the COPY's error once it failed."""
        while True:
            if self.error is not None or not self._thread.is_alive():
                self._thread.join()
                raise self.error or RuntimeError("the COPY has already ended")
            try:
                self._queue.put(chunk, timeout=_POLL)
                return
            except queue.Full:
                continue  # the server is busy with earlier batches

    def finish(self) -> None:
        """End the COPY and wait for the server to take every row; raises its error if it failed."""
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=_POLL)
                break
            except queue.Full:
                continue
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> bool:
        """Stop the COPY, keeping none of it. True once the connection is free for other work."""
        while True:  # drop what is queued: the ABORT must be the next thing ``read`` takes
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(_ABORT)  # room: only the caller's thread adds to the queue
        self._thread.join(_CANCEL_AFTER)
        if self._thread.is_alive():
            # The thread is stuck sending (a server that stopped reading, e.g. waiting on a lock).
            try:
                self.conn.cancel()
            except Exception:
                pass  # the connection is broken: the send fails on its own
            self._thread.join(_GIVE_UP_AFTER)
        return not self._thread.is_alive()

    # -- the COPY thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                while not self._ended:  # a COPY ended early to hear a notice goes on in a new one
                    self._sent_in_copy = 0
                    cur.copy_expert(self.statement, self)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self.error = exc

    def read(self, size: int = -1) -> bytes:
        """What ``copy_expert`` sends next: a queued chunk, or ``b""`` to end the COPY."""
        if self._sent_in_copy and _readable(self._socket):
            return b""  # the server spoke mid-COPY (most likely to reject a row): end it and hear it
        item = self._queue.get()
        if item is _END:
            self._ended = True
            return b""
        if item is _ABORT:
            self._ended = True
            raise CopyAborted("the load was aborted")
        self._sent_in_copy += 1
        return item


def _readable(fd: int) -> bool:
    """Whether the server has sent something (without reading it)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False  # cannot tell: the server's answer then comes when the COPY ends
