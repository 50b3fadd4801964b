"""Deterministic crash points for the fault-injection test suite.

The engine and the local state backend call :func:`point` at the moments where a crash matters
(a batch read, a batch written, just before and just after the destination commits, halfway
through a state write). Normally that is one dictionary lookup. With
``DATALOADER_FAULT_AT=N`` the process kills itself with SIGKILL at the N-th point, exactly like an
out-of-memory kill or a pulled plug; ``DATALOADER_FAULT_LOG=FILE`` appends each point's name, so a
test can count the points of a run and pick kill points at random (seeded) among them.
"""

from __future__ import annotations

import os
import signal
import threading

_lock = threading.Lock()
_count = 0
_target = int(os.environ.get("DATALOADER_FAULT_AT", "0") or 0)
_log = os.environ.get("DATALOADER_FAULT_LOG")


def point(name: str) -> None:
    """A place where a crash must lose and duplicate nothing."""
    if not _target and not _log:
        return
    global _count
    with _lock:
        _count += 1
        if _log:
            with open(_log, "a", encoding="utf-8") as out:
                out.write(f"{_count} {name}\n")
        if _count == _target:
            os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["point"]
