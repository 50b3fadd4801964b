"""Source behaviour: cursor predicates, partitioned parallel reads, batching, lost connections."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pytest
from dataloader.batch import Batch
from dataloader.errors import ConnectorError, TransientConnectorError
from dataloader.state import State


def _read(source, state: State | None = None) -> pa.Table:
    batches = [b.to_arrow() for b in source.read_batches(state or State())]
    return pa.Table.from_batches(batches, schema=source.get_schema())


@pytest.fixture
def numbers(pg, table_name):
    """10 000 rows: id 1..10000 (and 3 rows with a NULL id), a timestamp and a label."""
    with pg.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {table_name} AS SELECT g AS id, timestamptz '2024-01-01' + g * interval '1 minute' AS at, "
            f"'row ' || g AS label FROM generate_series(1, 10000) g"
        )
        cur.execute(f"INSERT INTO {table_name} SELECT NULL, NULL, 'no id ' || g FROM generate_series(1, 3) g")
    return table_name


def test_batches_have_the_run_batch_size(connector, numbers):
    sizes = [b.row_count for b in connector(table=numbers, batch_size=3000).read_batches(State())]
    assert sizes == [3000, 3000, 3000, 1003]


def test_batches_keep_the_run_batch_size_and_row_order_across_parse_blocks(connector, numbers, monkeypatch):
    from dataloader_postgres import reader

    monkeypatch.setattr(reader, "BLOCK_SIZE", 1 << 12)  # a few dozen rows per parse block
    source = connector(table=numbers, batch_size=700)
    batches = [b.to_arrow() for b in source.read_batches(State())]
    assert [b.num_rows for b in batches] == [700] * 14 + [203]
    expected = _read(connector(table=numbers, batch_size=100_000))
    assert pa.Table.from_batches(batches).equals(expected)


def test_rechunk_slices_blocks_without_copying_and_joins_only_across_blocks():
    """The connector cuts parse blocks with the core's rechunk: slices, never copies."""
    from dataloader.engine import rechunk

    schema = pa.schema([("n", pa.int64())])
    blocks = [pa.record_batch([pa.array(range(start, start + 7), pa.int64())], schema=schema) for start in (0, 7)]
    out = [b.to_arrow_chunks() for b in rechunk(iter(Batch.from_arrow(b) for b in blocks), 3)]
    assert [sum(c.num_rows for c in b) for b in out] == [3, 3, 3, 3, 2]
    assert [v for b in out for c in b for v in c.column(0).to_pylist()] == list(range(14))
    data = blocks[0].column(0).buffers()[1].address
    assert out[0][0].column(0).buffers()[1].address == data  # a slice of the block, not a copy
    assert out[1][0].column(0).buffers()[1].address == data
    assert len(out[2]) == 2  # the batch across the two blocks holds a slice of each


def test_cursor_reads_rows_at_or_after_the_committed_value(connector, numbers):
    state = State()
    state.set_cursor("id", 9998)
    source = connector(table=numbers, incremental={"strategy": "cursor", "cursor_column": "id"})
    assert sorted(_read(source, state).column("id").to_pylist()) == [9998, 9999, 10000]


def test_initial_value_applies_before_the_first_run(connector, numbers):
    source = connector(
        table=numbers,
        incremental={"strategy": "cursor", "cursor_column": "at", "initial_value": "2024-01-07T22:38:00+00:00"},
    )
    assert sorted(_read(source).column("id").to_pylist()) == [9998, 9999, 10000]


def test_a_cursor_value_is_a_literal_not_sql(connector, numbers):
    state = State()
    state.set_cursor("label", "x' OR '1'='1")
    source = connector(table=numbers, incremental={"strategy": "cursor", "cursor_column": "label"})
    assert _read(source, state).num_rows == 0


@pytest.mark.parametrize("column", ["id", "at"])
def test_partitioned_read_returns_the_same_rows_as_a_single_read(connector, numbers, column):
    single = _read(connector(table=numbers)).sort_by([("label", "ascending")])
    parallel_source = connector(
        table=numbers, parallelism=4, batch_size=500, partition={"column": column, "partitions": 7}
    )
    parallel = _read(parallel_source).sort_by([("label", "ascending")])
    assert parallel.num_rows == 10003
    assert parallel.equals(single)


@pytest.fixture
def wide(pg, table_name):
    """300 000 rows of about 200 bytes: too many to fit in pipes and parse blocks at once."""
    with pg.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {table_name} AS SELECT g AS id, repeat('x', 200) AS filler "
            "FROM generate_series(1, 300000) g"
        )
    return table_name


def _active_copies(pg) -> int:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dataloader' "
            "AND backend_type = 'client backend' AND state = 'active' AND query LIKE 'COPY%%' "
            "AND datname = current_database()"
        )
        return cur.fetchone()[0]


def test_partitioned_reads_run_concurrently_on_separate_connections(pg, connector, wide, monkeypatch):
    from dataloader_postgres import reader

    # Small parse blocks: the bounded hand-off queue then holds far less than one partition.
    monkeypatch.setattr(reader, "BLOCK_SIZE", 1 << 16)
    source = connector(table=wide, parallelism=3, batch_size=1000, partition={"column": "id", "partitions": 3})
    batches = source.read_batches(State())
    first = next(batches)
    # Nothing is consumed now, so every worker's COPY stays open, blocked on its pipe.
    deadline = time.monotonic() + 30
    most = _active_copies(pg)
    while most < 3 and time.monotonic() < deadline:
        most = max(most, _active_copies(pg))
    assert most == 3
    assert first.row_count + sum(b.row_count for b in batches) == 300000


def test_partitioned_read_combines_with_the_cursor(connector, numbers):
    state = State()
    state.set_cursor("id", 9001)
    source = connector(
        table=numbers,
        parallelism=2,
        incremental={"strategy": "cursor", "cursor_column": "id"},
        partition={"column": "id", "partitions": 4},
    )
    assert sorted(_read(source, state).column("id").to_pylist()) == list(range(9001, 10001))


def test_missing_table_is_a_clear_error(connector):
    with pytest.raises(ConnectorError, match=r"table public\.no_such_table does not exist"):
        list(connector(table="no_such_table").read_batches(State()))


def test_unknown_cursor_column_is_named(connector, numbers):
    source = connector(table=numbers, incremental={"strategy": "cursor", "cursor_column": "nope"})
    with pytest.raises(ConnectorError, match="incremental.cursor_column 'nope' is not a column"):
        list(source.read_batches(State()))


def test_stopping_early_cancels_the_copy_and_the_connection_stays_usable(connector, numbers):
    source = connector(table=numbers, batch_size=100)
    batches = source.read_batches(State())
    next(batches)
    batches.close()
    assert _read(source).num_rows == 10003


def test_a_connection_lost_mid_read_is_transient(pg, connector, wide):
    source = connector(table=wide, batch_size=1000)
    batches = source.read_batches(State())
    next(batches)
    with pg.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (source.conn.get_backend_pid(),))
    with pytest.raises(TransientConnectorError, match="terminat|closed|lost"):
        for _ in batches:
            pass


def test_unreachable_server_is_retried_then_reported_as_transient(connector, section):
    from dataloader_postgres.config import PostgresConfig
    from dataloader_postgres.connection import connect

    config = PostgresConfig.model_validate(
        section(table="t", host="127.0.0.1", port=1, connect_attempts=3, retry_initial_delay=0)
    )
    with pytest.raises(TransientConnectorError, match="gave up after 3 attempts") as caught:
        connect(config)
    assert caught.value.context["attempts"] == 3


def test_estimate_uses_the_catalog_for_tables_and_none_for_queries(pg, connector, numbers):
    with pg.cursor() as cur:
        cur.execute(f"ANALYZE {numbers}")
    assert connector(table=numbers).estimate_total_records(State()) == 10003
    assert connector(query="SELECT 1 AS one").estimate_total_records(State()) is None


def test_test_connection_passes_and_reports_a_missing_table(connector, numbers):
    connector(table=numbers).test_connection()
    with pytest.raises(ConnectorError, match="does not exist"):
        connector(table="no_such_table").test_connection()


def test_timestamp_partition_bounds_split_evenly():
    from dataloader_postgres.connector import split_range

    start = dt.datetime(2024, 1, 1)
    assert split_range(start, start + dt.timedelta(days=4), 4) == [start + dt.timedelta(days=d) for d in (1, 2, 3)]
    assert split_range(1, 10, 4) == [4, 7, 10]
    assert split_range(5, 5, 4) == []
