"""Network hygiene: every connection has keepalives and timeouts; statement_timeout spares COPY."""

from __future__ import annotations

import pyarrow as pa
import pytest
from dataloader.batch import Batch
from dataloader.errors import ConnectorError
from dataloader.run.ledger import LeaseHolder
from dataloader.state import State
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connection import connect, translate
from test_writes import _rows


def _settings(conn) -> dict[str, str]:
    return conn.get_dsn_parameters()


def test_every_connection_has_keepalives_and_timeouts(connector, table_name):
    destination = connector(role="destination", table=table_name, network_timeout=7, keepalives_idle=11)
    destination.acquire_lock("test", LeaseHolder.current("run-1"))
    for conn in (destination.conn, destination._lock._conn):
        params = _settings(conn)
        assert params["keepalives"] == "1"
        assert params["keepalives_idle"] == "11"
        assert params["keepalives_interval"] == "10" and params["keepalives_count"] == "3"
        assert params["tcp_user_timeout"] == "7000"
        assert params["connect_timeout"] == "10"


def test_statement_timeout_limits_statements_but_not_the_copy_of_a_long_load(pg, connector, table_name):
    destination = connector(role="destination", table=table_name, statement_timeout=0.1)
    rows = 400_000  # its COPY runs well past 0.1 s
    data = pa.table({"id": pa.array(range(rows), pa.int64()), "name": pa.array([f"name {i}" for i in range(rows)])})
    destination.begin(data.schema, "append", State())
    for batch in data.to_batches(max_chunksize=50_000):
        destination.write_batch(Batch.from_arrow(batch), State())
    destination.commit(State())
    assert _rows(pg, f"SELECT count(*) FROM {table_name}") == [(rows,)]
    with destination.conn.cursor() as cur:  # the limit is back for everything else
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] == "100ms"
        with pytest.raises(Exception, match="statement timeout"):
            cur.execute("SELECT pg_sleep(2)")
    destination.conn.rollback()


def test_no_statement_timeout_by_default(connector, table_name):
    destination = connector(role="destination", table=table_name)
    with destination.conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] == "0"


def test_refused_first_connection_is_not_retried(section):
    config = PostgresConfig.model_validate(section(host="127.0.0.1", port=1, table="t"))
    with pytest.raises(ConnectorError) as caught:
        connect(config)
    assert not caught.value.transient
    assert "check `host` and `port`" in str(caught.value) and "gave up" not in str(caught.value)


def test_invalid_dsn_pieces_are_masked():
    import psycopg2

    config = PostgresConfig.model_validate({"type": "postgres", "dsn": "host=x password=abc def-secret", "table": "t"})
    try:
        psycopg2.connect(config.dsn)
    except psycopg2.Error as exc:
        message = str(translate(exc, config, "connecting"))
    assert "def-secret" not in message and "abc" not in message and "invalid dsn" in message
