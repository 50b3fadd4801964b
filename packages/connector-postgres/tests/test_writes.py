"""Destination behaviour: modes, schema changes, atomicity, quoting, the exactly-once state row."""

from __future__ import annotations

from typing import Any

import psycopg2
import pyarrow as pa
import pytest
from dataloader.batch import Batch
from dataloader.errors import ConnectorError
from dataloader.state import State


def _write(destination, mode: str, *tables: pa.Table, state: State | None = None) -> None:
    state = state or State()
    destination.begin(tables[0].schema, mode, state)
    for table in tables:
        for batch in table.to_batches(max_chunksize=2):
            destination.write_batch(Batch.from_arrow(batch), state)
    destination.commit(state)


def _rows(pg, sql: str) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _people(ids: list[int], names: list[str]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())})


@pytest.mark.parametrize("unique_key", [True, False], ids=["with-unique-constraint", "without-constraint"])
def test_merge_last_row_wins_for_repeated_key(pg, connector, table_name, unique_key):
    key = "PRIMARY KEY" if unique_key else ""
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint {key}, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'old one'), (2, 'old two')")
    batch_one = _people([2, 3, 2], ["first update", "three", "second update"])
    batch_two = _people([3, 2], ["three again", "last update"])
    _write(connector(role="destination", table=table_name, merge_keys=["id"]), "merge", batch_one, batch_two)
    assert _rows(pg, f"SELECT id, name FROM {table_name} ORDER BY id") == [
        (1, "old one"),
        (2, "last update"),
        (3, "three again"),
    ]


def test_merge_creates_the_table_and_repeated_runs_do_not_duplicate(pg, connector, table_name):
    for _ in range(2):
        _write(connector(role="destination", table=f"dw.{table_name}", merge_keys=["id"]), "merge",
               _people([1, 2], ["a", "b"]))
    assert _rows(pg, f"SELECT id, name FROM dw.{table_name} ORDER BY id") == [(1, "a"), (2, "b")]


def test_merge_refuses_a_null_key(connector, table_name):
    destination = connector(role="destination", table=table_name, merge_keys=["id"])
    data = pa.table({"id": pa.array([1, None], pa.int64()), "name": ["a", "b"]})
    destination.begin(data.schema, "merge", State())
    with pytest.raises(ConnectorError, match="merge key column 'id' is NULL"):
        destination.write_batch(Batch.from_arrow(data), State())
    destination.abort()


def test_append_adds_rows_and_a_new_source_column_as_nullable(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint NOT NULL, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'kept')")
    wider = pa.table({"id": pa.array([2], pa.int64()), "name": ["new"], "score": pa.array([1.5], pa.float64())})
    _write(connector(role="destination", table=table_name), "append", wider)
    assert _rows(pg, f"SELECT id, name, score FROM {table_name} ORDER BY id") == [(1, "kept", None), (2, "new", 1.5)]
    assert _rows(
        pg, f"SELECT data_type, is_nullable FROM information_schema.columns WHERE table_name = '{table_name}' "
        "AND column_name = 'score'"
    ) == [("double precision", "YES")]


def test_incompatible_type_change_is_refused_naming_the_column_and_nothing_is_written(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, amount integer)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 10)")
    data = pa.table({"id": pa.array([2], pa.int64()), "amount": pa.array(["ten"], pa.string())})
    destination = connector(role="destination", table=table_name)
    with pytest.raises(ConnectorError, match=r"column 'amount' .* is integer but the incoming data is string"):
        destination.begin(data.schema, "append", State())
    assert _rows(pg, f"SELECT id, amount FROM {table_name}") == [(1, 10)]


def test_overwrite_by_delete_readers_see_old_rows_until_commit_then_only_new_rows(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'old'), (2, 'old')")
    destination = connector(role="destination", table=table_name, overwrite_method="delete")
    seen_during_commit: list[Any] = []

    class CommitSpy:
        """The destination's connection, checking what a reader sees just before COMMIT."""

        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def commit(self) -> None:
            # The old rows are already deleted and the new ones inserted in this transaction.
            reader = psycopg2.connect(**pg.get_dsn_parameters())
            reader.autocommit = True
            with reader.cursor() as cur:
                cur.execute("SET lock_timeout = '5s'")  # a blocked reader would fail, not hang
                cur.execute(f"SELECT id, name FROM {table_name} ORDER BY id")
                seen_during_commit.extend(cur.fetchall())
            reader.close()
            self._conn.commit()

    new = _people([3, 4, 5], ["new", "new", "new"])
    destination.begin(new.schema, "overwrite", State())
    for batch in new.to_batches(max_chunksize=1):
        destination.write_batch(Batch.from_arrow(batch), State())
    assert _rows(pg, f"SELECT id, name FROM {table_name} ORDER BY id") == [(1, "old"), (2, "old")]
    destination._conn = CommitSpy(destination._conn)
    destination._write.conn = destination._conn
    destination.commit(State())
    assert seen_during_commit == [(1, "old"), (2, "old")]
    assert _rows(pg, f"SELECT id, name FROM {table_name} ORDER BY id") == [(3, "new"), (4, "new"), (5, "new")]


def test_abort_leaves_the_target_unchanged_and_drops_the_staging_table(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'before')")
    destination = connector(role="destination", table=table_name)
    data = _people([7, 8], ["x", "y"])
    destination.begin(data.schema, "overwrite", State())
    destination.write_batch(Batch.from_arrow(data.to_batches()[0]), State())
    destination.abort()
    with destination.conn.cursor() as cur:
        cur.execute("SELECT to_regclass('pg_temp._dataloader_stage')")
        assert cur.fetchone()[0] is None
    destination.conn.rollback()
    assert _rows(pg, f"SELECT id, name FROM {table_name}") == [(1, "before")]


def test_a_table_name_that_looks_like_sql_is_only_a_name(pg, connector):
    with pg.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS x (id int)")
    weird = 'weird "name"; drop table x'
    data = pa.table({'col "quoted"; --': pa.array([1, 2], pa.int64())})
    _write(connector(role="destination", table=weird, schema="odd schema"), "append", data)
    _write(connector(role="destination", table=weird, schema="odd schema", merge_keys=['col "quoted"; --']),
           "merge", data)
    source = connector(table=weird, schema="odd schema")
    got = pa.Table.from_batches([b.to_arrow() for b in source.read_batches(State())])
    assert sorted(got.column('col "quoted"; --').to_pylist()) == [1, 2]
    assert _rows(pg, "SELECT to_regclass('public.x') IS NOT NULL") == [(True,)]


def test_commit_records_the_run_for_exactly_once_recovery(connector, table_name):
    destination = connector(role="destination", table=table_name)
    state = State()
    state.set_cursor("updated_at", 5)
    _write(destination, "append", _people([1], ["a"]), state=state)
    found = destination.load_committed_state("test")
    assert found["run_id"] == destination.context.run_id
    assert found["state"]["cursor_values"] == {"updated_at": 5}
    assert destination.load_committed_state("another-recipe") is None


def test_overwrite_with_an_empty_source_empties_the_table(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1)")
    destination = connector(role="destination", table=table_name)
    destination.begin(None, "overwrite", State())
    destination.commit(State())
    assert _rows(pg, f"SELECT count(*) FROM {table_name}") == [(0,)]


def test_a_value_the_target_column_cannot_hold_names_the_column(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, amount numeric(4, 2))")
    data = pa.table({"id": pa.array([1], pa.int64()), "amount": pa.array([12345], pa.int64())})
    destination = connector(role="destination", table=table_name)
    destination.begin(data.schema, "append", State())
    with pytest.raises(ConnectorError, match="numeric field overflow.*column amount"):
        # The COPY streams: the server's verdict on the last batch arrives by commit at the latest.
        destination.write_batch(Batch.from_arrow(data), State())
        destination.commit(State())
    destination.abort()
    assert _rows(pg, f"SELECT count(*) FROM {table_name}") == [(0,)]


def _numbered(start: int, count: int, amount: float = 1.5) -> pa.RecordBatch:
    ids = pa.array(range(start, start + count), pa.int64())
    return pa.record_batch([ids, pa.array([amount] * count, pa.float64())], names=["id", "amount"])


def test_a_value_rejected_mid_run_fails_the_run_early_and_leaves_the_target_unchanged(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, amount numeric(4, 2))")
        cur.execute(f"INSERT INTO {table_name} VALUES (0, 1)")
    destination = connector(role="destination", table=table_name)
    destination.begin(_numbered(1, 1).schema, "append", State())
    destination.write_batch(Batch.from_arrow(_numbered(1, 5000)), State())
    destination.write_batch(Batch.from_arrow(_numbered(5001, 1, amount=12345.0)), State())
    # One COPY carries the run: the bad row is line 5001 of it. The server's error ends the
    # stream, so a later write_batch fails, long before the 40 MB that follow have been sent.
    with pytest.raises(ConnectorError, match=r"copying rows.*numeric field overflow.*line 5001, column amount"):
        for start in range(10_000, 2_010_000, 10_000):
            destination.write_batch(Batch.from_arrow(_numbered(start, 10_000)), State())
    destination.abort()
    assert _rows(pg, f"SELECT id, amount FROM {table_name}") == [(0, 1)]
    destination.begin(_numbered(1, 1).schema, "append", State())  # the connection is usable again
    destination.write_batch(Batch.from_arrow(_numbered(1, 2)), State())
    destination.commit(State())
    assert _rows(pg, f"SELECT count(*) FROM {table_name}") == [(3,)]


def test_batches_with_another_column_list_continue_in_a_new_copy(pg, connector, table_name):
    full = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())])
    destination = connector(role="destination", table=table_name)
    destination.begin(full, "append", State())
    for batch in (
        pa.record_batch([pa.array([1, 2], pa.int64()), pa.array(["a", "b"])], names=["id", "name"]),
        pa.record_batch([pa.array([0.5]), pa.array([3], pa.int64()), pa.array(["c"])], names=["score", "id", "name"]),
        pa.record_batch([pa.array([4], pa.int64()), pa.array(["d"])], names=["id", "name"]),
    ):
        destination.write_batch(Batch.from_arrow(batch), State())
    destination.commit(State())
    assert _rows(pg, f"SELECT id, name, score FROM {table_name} ORDER BY id") == [
        (1, "a", None), (2, "b", None), (3, "c", 0.5), (4, "d", None),
    ]


def test_a_batch_of_several_pieces_is_copied_piece_by_piece_in_order(pg, connector, table_name):
    """The engine hands over small source batches joined without a copy: every piece arrives once."""
    pieces = [
        pa.record_batch({"id": pa.array([1, 2], pa.int64()), "name": ["a", None], "at": pa.array([0, 1], pa.timestamp("us", tz="UTC"))}),
        pa.record_batch({"id": pa.array([3], pa.int64()), "name": ['quote " and, comma'], "at": pa.array([2], pa.timestamp("us", tz="UTC"))}),
        pa.record_batch({"id": pa.array([4, 5], pa.int64()), "name": ["", "e"], "at": pa.array([None, 4], pa.timestamp("us", tz="UTC"))}),
    ]
    batch = Batch.from_arrow(pa.Table.from_batches(pieces))
    assert len(batch.to_arrow_chunks()) == 3
    destination = connector(role="destination", table=table_name, merge_keys=["id"])
    destination.begin(pieces[0].schema, "merge", State())
    destination.write_batch(batch, State())
    destination.commit(State())
    rows = _rows(pg, f"SELECT id, name, extract(epoch FROM at)::float8 * 1e6 FROM {table_name} ORDER BY id")
    assert rows == [(1, "a", 0.0), (2, None, 1.0), (3, 'quote " and, comma', 2.0), (4, "", None), (5, "e", 4.0)]


def test_a_null_merge_key_in_any_piece_of_a_batch_is_refused(connector, table_name):
    pieces = [pa.record_batch({"id": pa.array([1], pa.int64())}), pa.record_batch({"id": pa.array([None], pa.int64())})]
    destination = connector(role="destination", table=table_name, merge_keys=["id"])
    destination.begin(pieces[0].schema, "merge", State())
    with pytest.raises(ConnectorError, match="merge key column 'id' is NULL"):
        destination.write_batch(Batch.from_arrow(pa.Table.from_batches(pieces)), State())
    destination.abort()


def test_notices_from_the_server_mid_copy_lose_no_rows(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, amount float8)")
        cur.execute(
            f"CREATE FUNCTION {table_name}_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.id % 1000 = 0 THEN RAISE NOTICE 'row %', NEW.id; END IF; RETURN NEW; END $$"
        )
        cur.execute(f"CREATE TRIGGER note BEFORE INSERT ON {table_name} FOR EACH ROW EXECUTE FUNCTION {table_name}_note()")
    destination = connector(role="destination", table=table_name)
    destination.begin(_numbered(1, 1).schema, "append", State())
    for start in range(1, 20_001, 500):
        destination.write_batch(Batch.from_arrow(_numbered(start, 500)), State())
    destination.commit(State())
    assert _rows(pg, f"SELECT count(*), count(DISTINCT id), sum(id) FROM {table_name}") == [(20000, 20000, 200010000)]


def test_merge_stages_every_batch_through_the_stream_in_order(pg, connector, table_name):
    destination = connector(role="destination", table=table_name, merge_keys=["id"])
    destination.begin(_numbered(1, 1).schema, "merge", State())
    for amount in (1.0, 2.0, 3.0):
        destination.write_batch(Batch.from_arrow(_numbered(1, 3000, amount=amount)), State())
    destination.commit(State())
    assert _rows(pg, f"SELECT count(*), min(amount), max(amount) FROM {table_name}") == [(3000, 3.0, 3.0)]


def _wait_until_waiting_on_a_lock(pg, pid: int) -> None:
    with pg.cursor() as cur:
        for _ in range(500):
            cur.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,))
            if cur.fetchone()[0]:
                return
            cur.execute("SELECT pg_sleep(0.01)")
    raise AssertionError("the COPY never waited on the lock")


def test_abort_while_the_server_is_stuck_mid_copy_does_not_hang(pg, pg_params, connector, table_name, monkeypatch):
    from dataloader_postgres import copy_in

    monkeypatch.setattr(copy_in, "_CANCEL_AFTER", 0.2)
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint PRIMARY KEY, amount float8)")
    blocker = psycopg2.connect(**pg_params)
    try:
        with blocker.cursor() as cur:  # an uncommitted row with the same key: the COPY waits on it
            cur.execute(f"INSERT INTO {table_name} VALUES (1, 0)")
        destination = connector(role="destination", table=table_name)
        destination.begin(_numbered(1, 1).schema, "append", State())
        # More rows than COPY buffers before inserting, so the server does reach the waiting key.
        destination.write_batch(Batch.from_arrow(_numbered(1, 5000)), State())
        _wait_until_waiting_on_a_lock(pg, destination.conn.get_backend_pid())
        destination.abort()
    finally:
        blocker.rollback()
        blocker.close()
    assert _rows(pg, f"SELECT count(*) FROM {table_name}") == [(0,)]
    with destination.conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_a_merge_key_missing_from_the_data_is_named(connector, table_name):
    destination = connector(role="destination", table=table_name, merge_keys=["customer_id"])
    with pytest.raises(ConnectorError, match="merge key 'customer_id' is not a column"):
        destination.begin(_people([1], ["a"]).schema, "merge", State())


def _reader_sees(pg, table_name: str) -> list[tuple] | str:
    """What another session reads now, or 'waits' when it would block on the load's lock."""
    reader = psycopg2.connect(**pg.get_dsn_parameters())
    reader.autocommit = True
    try:
        with reader.cursor() as cur:
            cur.execute("SET lock_timeout = '200ms'")
            try:
                cur.execute(f"SELECT id, name FROM {table_name} ORDER BY id")
            except psycopg2.errors.LockNotAvailable:
                return "waits"
            return cur.fetchall()
    finally:
        reader.close()


def test_overwrite_truncates_readers_wait_and_never_see_a_partial_table(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'old'), (2, 'old')")
    [(file_before,)] = _rows(pg, f"SELECT pg_relation_filenode('{table_name}')")
    destination = connector(role="destination", table=table_name)
    new = _people([3, 4, 5], ["new", "new", "new"])
    destination.begin(new.schema, "overwrite", State())
    for batch in new.to_batches(max_chunksize=1):
        destination.write_batch(Batch.from_arrow(batch), State())
    assert _reader_sees(pg, table_name) == "waits"
    destination.commit(State())
    assert _reader_sees(pg, table_name) == [(3, "new"), (4, "new"), (5, "new")]
    # TRUNCATE gave the table a new, empty file: no dead rows left behind for VACUUM.
    assert _rows(pg, f"SELECT pg_relation_filenode('{table_name}')") != [(file_before,)]


def test_aborted_truncating_overwrite_keeps_the_old_rows(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'old'), (2, 'old')")
    destination = connector(role="destination", table=table_name)
    new = _people([3], ["new"])
    destination.begin(new.schema, "overwrite", State())
    destination.write_batch(Batch.from_arrow(new.to_batches()[0]), State())
    destination.abort()
    assert _reader_sees(pg, table_name) == [(1, "old"), (2, "old")]


def test_overwrite_of_a_table_referenced_by_a_foreign_key_deletes_instead(pg, connector, table_name):
    """TRUNCATE would fail on a referenced table; the overwrite falls back to DELETE."""
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint PRIMARY KEY, name text)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'old')")
        cur.execute(f"CREATE TABLE {table_name}_child (parent bigint REFERENCES {table_name} (id))")
    try:
        destination = connector(role="destination", table=table_name)
        new = _people([3, 4], ["new", "new"])
        destination.begin(new.schema, "overwrite", State())
        destination.write_batch(Batch.from_arrow(new.to_batches()[0]), State())
        destination.commit(State())
        assert _rows(pg, f"SELECT id, name FROM {table_name} ORDER BY id") == [(3, "new"), (4, "new")]
    finally:
        with pg.cursor() as cur:
            cur.execute(f"DROP TABLE {table_name}_child")
