"""The dataset lock on local files: one run of a recipe per dataset; stale locks are taken over safely."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dataloader.errors import LeaseHeldError, LeaseLostError
from dataloader.run.ledger import LeaseHolder
from filestore_helpers import dataset_dest
from lock_helpers import dead_pid, destination, elsewhere, lock_payload

LOCK = Path("_dataloader/locks/locked.json")


@pytest.fixture
def out(tmp_path: Path, host) -> Path:
    return tmp_path / "out"


def test_a_second_run_fails_at_once_naming_the_holder(out: Path) -> None:
    first = destination(dataset_dest(out), "run-one")
    first.acquire_lock("locked", LeaseHolder.current("run-one"))
    second = destination(dataset_dest(out), "run-two")
    started = time.monotonic()
    with pytest.raises(LeaseHeldError) as caught:
        second.acquire_lock("locked", LeaseHolder.current("run-two"))
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "run-one" in message and "pid" in message and str(out / LOCK) in message
    first.release_lock("locked")
    assert not (out / LOCK).exists()
    second.acquire_lock("locked", LeaseHolder.current("run-two"))
    assert "run-two" in (out / LOCK).read_text()
    second.close()  # close releases the lock
    assert not (out / LOCK).exists()


def test_each_recipe_has_its_own_lock(out: Path) -> None:
    one = destination(dataset_dest(out), "run-one", recipe="a")
    two = destination(dataset_dest(out), "run-two", recipe="b")
    one.acquire_lock("a", LeaseHolder.current("run-one"))
    two.acquire_lock("b", LeaseHolder.current("run-two"))
    one.close()
    two.close()


def test_the_lock_of_a_dead_process_is_taken_over(out: Path) -> None:
    (out / LOCK).parent.mkdir(parents=True)
    gone = LeaseHolder(run_id="crashed-run", host=LeaseHolder.current("x").host, pid=dead_pid(), since="then")
    (out / LOCK).write_bytes(lock_payload(gone, renewed_ago_s=1))
    taker = destination(dataset_dest(out), "run-two")
    taker.acquire_lock("locked", LeaseHolder.current("run-two"))
    assert "run-two" in (out / LOCK).read_text()
    taker.close()


def test_a_fresh_lock_of_another_host_is_respected(out: Path) -> None:
    (out / LOCK).parent.mkdir(parents=True)
    (out / LOCK).write_bytes(lock_payload(elsewhere(), renewed_ago_s=5))
    before = (out / LOCK).read_bytes()
    with pytest.raises(LeaseHeldError, match="another-host.example"):
        destination(dataset_dest(out), "run-two").acquire_lock("locked", LeaseHolder.current("run-two"))
    assert (out / LOCK).read_bytes() == before


def test_an_unrenewed_lock_older_than_the_ttl_is_taken_over(out: Path) -> None:
    (out / LOCK).parent.mkdir(parents=True)
    (out / LOCK).write_bytes(lock_payload(elsewhere(), renewed_ago_s=500, ttl_s=120))
    taker = destination(dataset_dest(out), "run-two")
    taker.acquire_lock("locked", LeaseHolder.current("run-two"))
    assert "run-two" in (out / LOCK).read_text()
    taker.close()


def test_two_runs_taking_over_one_stale_lock_cannot_both_win(out: Path) -> None:
    from dataloader_filestore.locks import LocalLockStore

    (out / LOCK).parent.mkdir(parents=True)
    stale = lock_payload(elsewhere(), renewed_ago_s=500)
    (out / LOCK).write_bytes(stale)
    store = LocalLockStore()
    # Both judged the same stale version; the swaps happen one after the other.
    assert store.swap(str(out / LOCK), stale, b'{"winner": 1}') is not None
    assert store.swap(str(out / LOCK), stale, b'{"winner": 2}') is None
    assert (out / LOCK).read_bytes() == b'{"winner": 1}'
    assert sorted(p.name for p in (out / LOCK).parent.iterdir()) == ["locked.json"]


def test_a_run_whose_lock_was_taken_over_does_not_commit(out: Path) -> None:
    import pyarrow as pa
    from dataloader.batch import Batch
    from dataloader.state import State

    slow = destination(dataset_dest(out, lock_ttl_s=60), "slow-run")
    slow.acquire_lock("locked", LeaseHolder.current("slow-run"))
    batch = Batch.from_arrow(pa.table({"id": [1, 2]}))
    slow.begin(batch.schema, "append", State())
    slow.write_batch(batch, State())
    # Another run took the lock over (as if this one had stalled past the TTL) ...
    (out / LOCK).write_bytes(lock_payload(elsewhere("thief"), renewed_ago_s=0))
    slow._lock.renew()  # ... which the next renewal notices
    with pytest.raises(LeaseLostError, match="taken over"):
        slow.commit(State())
    slow.abort()
    slow.close()
    assert not (out / "_dataloader_manifest.json").exists()
    assert "thief" in (out / LOCK).read_text()  # the other run's lock is left alone


def test_an_unreadable_lock_file_is_not_silently_replaced(out: Path) -> None:
    (out / LOCK).parent.mkdir(parents=True)
    (out / LOCK).write_text("not json")
    with pytest.raises(Exception, match="not a dataloader lock"):
        destination(dataset_dest(out), "run-two").acquire_lock("locked", LeaseHolder.current("run-two"))
