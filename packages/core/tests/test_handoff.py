"""The channel streaming destinations use to feed a driver call on a worker thread."""

from __future__ import annotations

import threading

import pytest
from dataloader.errors import ConnectorError
from dataloader.handoff import END, Handoff, HandoffCancelled


def _collector(handoff: Handoff, seen: list) -> None:
    while (item := handoff.get()) is not END:
        seen.append(item)


def test_items_arrive_in_order_and_finish_waits_for_the_worker() -> None:
    handoff, seen = Handoff(2, name="t", ended_early="ended"), []
    handoff.start(lambda: _collector(handoff, seen))
    for i in range(100):
        handoff.put(i)
    handoff.finish()
    assert seen == list(range(100)) and not handoff.alive


def test_the_workers_error_reaches_the_next_put_and_finish() -> None:
    handoff = Handoff(1, name="t", ended_early="ended")

    def work() -> None:
        handoff.get()
        raise ValueError("row 3 rejected")

    handoff.start(work)
    with pytest.raises(ValueError, match="row 3 rejected"):
        for i in range(100):  # the queue fills; put notices the worker has died
            handoff.put(i)
    with pytest.raises(ValueError, match="row 3 rejected"):
        handoff.finish()


def test_a_worker_that_stops_taking_items_without_an_error_is_an_error() -> None:
    handoff = Handoff(1, name="t", ended_early="the insert ended before its rows did")
    handoff.start(handoff.get)  # takes one item and returns
    handoff.put("first")
    with pytest.raises(ConnectorError, match="ended before its rows did"):
        handoff.finish()


def test_cancel_drops_queued_items_and_fails_the_workers_next_get() -> None:
    handoff, seen, started = Handoff(2, name="t", ended_early="ended"), [], threading.Event()

    def work() -> None:
        started.wait()
        _collector(handoff, seen)

    handoff.start(work)
    handoff.put("queued 1")
    handoff.put("queued 2")
    assert handoff.alive
    started.set()
    assert handoff.cancel(timeout=5)
    assert isinstance(handoff.error, HandoffCancelled)
    assert len(seen) <= 2 and not handoff.alive
