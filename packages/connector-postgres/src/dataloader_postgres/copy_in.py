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
fail (through the core's :class:`~dataloader.handoff.Handoff`, which also carries the batches) so
the server drops the COPY (cancelling it on the server when the thread does not get to
``read`` in time), and waits. Neither commits anything: the rows live in the caller's open
transaction, so an abort, a rollback or a killed process leaves the table as it was.

The server reports a rejected row only when the COPY ends, not while data flows. So that a bad
row fails the run at once instead of after everything has been sent, ``read`` looks whether the
server has said anything before taking the next batch and, if so, ends the COPY to hear it: an
error then surfaces from the next ``send``; anything else (a notice) is harmless and the rows
continue in a new COPY.
"""

from __future__ import annotations

import select
from typing import Any

from dataloader.handoff import END, Handoff

#: Encoded batches waiting for the COPY thread (the caller blocks when they are this many).
CAPACITY = 2
#: Seconds ``abort`` waits for the COPY thread before cancelling the COPY on the server, and
#: after that before giving up on the thread (and its connection).
_CANCEL_AFTER = 2.0
_GIVE_UP_AFTER = 30.0


class CopyInStream:
    """``statement`` (a ``COPY ... FROM STDIN``) running on ``conn`` until finished or aborted."""

    def __init__(self, conn: Any, statement: str, columns: tuple[str, ...]) -> None:
        self.conn, self.statement, self.columns = conn, statement, columns
        self._handoff = Handoff(CAPACITY, name="dataloader-postgres-copy-in", ended_early="the COPY has already ended")
        self._ended = False
        self._sent_in_copy = 0
        self._socket = conn.fileno()
        self._handoff.start(self._run)

    # -- the caller's side -----------------------------------------------------------------
    def send(self, chunk: bytes) -> None:
        """Queue ``chunk`` (whole CSV lines) for the COPY; raises the COPY's error once it failed."""
        self._handoff.put(chunk)

    def finish(self) -> None:
        """End the COPY and wait for the server to take every row; raises its error if it failed."""
        self._handoff.finish()

    def abort(self) -> bool:
        """Stop the COPY, keeping none of it. True once the connection is free for other work."""
        if self._handoff.cancel(_CANCEL_AFTER):
            return True
        # The thread is stuck sending (a server that stopped reading, e.g. waiting on a lock).
        try:
            self.conn.cancel()
        except Exception:
            pass  # the connection is broken: the send fails on its own
        return self._handoff.join(_GIVE_UP_AFTER)

    # -- the COPY thread -------------------------------------------------------------------
    def _run(self) -> None:
        with self.conn.cursor() as cur:
            while not self._ended:  # a COPY ended early to hear a notice goes on in a new one
                self._sent_in_copy = 0
                cur.copy_expert(self.statement, self)

    def read(self, size: int = -1) -> bytes:
        """What ``copy_expert`` sends next: a queued chunk, or ``b""`` to end the COPY.

        After ``abort`` the handoff raises here, and psycopg2 fails the COPY (the server keeps no
        row of it).
        """
        if self._sent_in_copy and _readable(self._socket):
            return b""  # the server spoke mid-COPY (most likely to reject a row): end it and hear it
        item = self._handoff.get()
        if item is END:
            self._ended = True
            return b""
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
