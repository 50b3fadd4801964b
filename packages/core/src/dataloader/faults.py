"""Deterministic crash points for the fault-injection test suite.

The engine and the local state backend call :func:`point` at the moments where a crash matters
(a batch read, a batch written, just before and just after the destination commits, halfway
through a state write). Normally that is one dictionary lookup. With
``DATALOADER_FAULT_AT=N`` the process kills itself with SIGKILL at the N-th point, exactly like an
out-of-memory kill or a pulled plug; ``DATALOADER_FAULT_LOG=FILE`` appends each point's name, so a
test can count the points of a run and pick kill points at random (seeded) among them.

``DATALOADER_FAULT_KILL_AT=NAME`` kills the process at the first point of that name instead, and
``DATALOADER_FAULT_PAUSE=NAME:SECONDS`` sleeps there once (to hold a run open while a test starts
another).
In-process tests use :func:`inject` to raise an exception at a named point once (the contract kit
raises a transient error at ``commit_reply`` to play a reply lost after the server committed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

_lock = threading.Lock()
_count = 0
_target = int(os.environ.get("DATALOADER_FAULT_AT", "0") or 0)
_kill_at = os.environ.get("DATALOADER_FAULT_KILL_AT") or None
_log = os.environ.get("DATALOADER_FAULT_LOG")
_pause_name, _, _pause_s = (os.environ.get("DATALOADER_FAULT_PAUSE") or "").partition(":")
_injected: dict[str, list[Callable[[], BaseException]]] = {}


def point(name: str) -> None:
    """A place where a crash must lose and duplicate nothing."""
    global _count, _pause_name
    if _injected:
        _raise_injected(name)
    if not _target and not _log and not _kill_at and not _pause_name:
        return
    with _lock:
        _count += 1
        if _log:
            with open(_log, "a", encoding="utf-8") as out:
                out.write(f"{_count} {name}\n")
        if _count == _target or name == _kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        pause = float(_pause_s or 0) if name == _pause_name else 0.0
        if pause:
            _pause_name = ""
    if pause:
        time.sleep(pause)


def _raise_injected(name: str) -> None:
    with _lock:
        pending = _injected.get(name)
        make = pending.pop(0) if pending else None
    if make is not None:
        raise make()


@contextlib.contextmanager
def inject(name: str, make: Callable[[], BaseException], times: int = 1) -> Iterator[None]:
    """Raise ``make()`` at the next ``times`` points called ``name`` while the block runs."""
    with _lock:
        _injected.setdefault(name, []).extend([make] * times)
    try:
        yield
    finally:
        with _lock:
            _injected.pop(name, None)


__all__ = ["point", "inject"]
