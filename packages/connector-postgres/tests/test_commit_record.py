"""The commit record: written with the rows in one transaction, read back as the core's CommitRecord."""

from __future__ import annotations

import json

import pytest
from dataloader.connector import CommitsState, LocksRecipe, Transactional
from dataloader.state import State
from dataloader_postgres.capabilities import CAPABILITIES
from test_writes import _people, _rows, _write


@pytest.fixture
def fresh_state_table(pg):
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS public._dataloader_state")
    yield
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS public._dataloader_state")


def test_capabilities_and_protocols_are_declared(connector, table_name):
    destination = connector(role="destination", table=table_name)
    assert CAPABILITIES.commits_state and CAPABILITIES.locks and CAPABILITIES.transactional
    assert isinstance(destination, CommitsState)
    assert isinstance(destination, LocksRecipe)
    assert isinstance(destination, Transactional)


def test_the_record_holds_run_state_and_what_was_published(pg, connector, table_name, fresh_state_table):
    destination = connector(role="destination", table=table_name)
    destination.context.extras["published"] = {"checkpoint": 2}
    state = State()
    state.set_cursor("updated_at", 5)
    _write(destination, "append", _people([1, 2, 3], ["a", "b", "c"]), state=state)
    found = destination.load_committed_state("test")
    assert set(found) == {"recipe_name", "run_id", "state", "published", "committed_at"}
    assert found["recipe_name"] == "test" and found["run_id"] == destination.context.run_id
    assert found["state"]["cursor_values"] == {"updated_at": 5}
    assert found["published"] == {"rows": 3, "mode": "append", "checkpoint": 2}
    assert found["committed_at"].endswith("+00:00")
    # One row per recipe, replaced by the next commit.
    _write(destination, "append", _people([4], ["d"]))
    assert _rows(pg, "SELECT count(*) FROM public._dataloader_state WHERE recipe_name = 'test'") == [(1,)]
    assert destination.load_committed_state("test")["published"]["rows"] == 1


def test_a_failed_commit_leaves_the_previous_record(pg, connector, table_name, fresh_state_table):
    destination = connector(role="destination", table=table_name)
    _write(destination, "append", _people([1], ["a"]))
    before = destination.load_committed_state("test")
    destination.begin(_people([2], ["b"]).schema, "append", State())
    destination.abort()
    assert destination.load_committed_state("test") == before


def test_records_of_the_old_jsonb_table_are_read_and_replaced(pg, connector, table_name, fresh_state_table):
    legacy_state = {"version": 1, "cursor_values": {"id": 41}, "watermarks": {}, "checkpoints": {}, "metadata": {}}
    with pg.cursor() as cur:
        cur.execute(
            "CREATE TABLE public._dataloader_state (recipe_name text PRIMARY KEY, run_id text NOT NULL, "
            "state jsonb NOT NULL, committed_at timestamptz NOT NULL)"
        )
        cur.execute(
            "INSERT INTO public._dataloader_state VALUES ('test', 'old-run', %s, now())", (json.dumps(legacy_state),)
        )
    destination = connector(role="destination", table=table_name)
    found = destination.load_committed_state("test")
    assert found["run_id"] == "old-run" and found["state"] == legacy_state and found["published"] == {}
    # The next commit writes the new record into the old table (its jsonb and timestamptz columns).
    state = State.from_dict(legacy_state)
    state.set_cursor("id", 42)
    _write(destination, "append", _people([1], ["a"]), state=state)
    found = destination.load_committed_state("test")
    assert found["run_id"] == destination.context.run_id and found["state"]["cursor_values"] == {"id": 42}
    assert _rows(pg, "SELECT count(*) FROM public._dataloader_state") == [(1,)]


def test_committed_state_is_read_beside_an_open_write(pg, connector, table_name, fresh_state_table):
    destination = connector(role="destination", table=table_name)
    _write(destination, "append", _people([1], ["a"]))
    committed = destination.load_committed_state("test")
    from dataloader.batch import Batch

    destination.begin(_people([2], ["b"]).schema, "append", State())
    for batch in _people([2], ["b"]).to_batches():
        destination.write_batch(Batch.from_arrow(batch), State())
    assert destination.load_committed_state("test") == committed  # the open write is untouched ...
    destination.commit(State())
    assert _rows(pg, f"SELECT id FROM {table_name} ORDER BY id") == [(1,), (2,)]  # ... and still commits
