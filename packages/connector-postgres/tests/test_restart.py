"""A server restart is a transient failure: connecting retries until the server is back."""

from __future__ import annotations

import os
import threading

import pytest
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connection import connect
from dataloader_postgres.testing import _run, start_cluster


@pytest.fixture
def cluster():
    try:
        started = start_cluster()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"cannot start a throwaway PostgreSQL cluster: {exc}")
        pytest.skip(f"cannot start a throwaway PostgreSQL cluster: {exc}")
    yield started
    started.stop()


def test_connecting_while_the_server_restarts_retries_until_it_is_back(cluster, monkeypatch):
    import psycopg2

    real_connect = psycopg2.connect
    refused = threading.Event()
    calls: list[str] = []

    def counting_connect(*args, **kwargs):
        try:
            return real_connect(*args, **kwargs)
        except psycopg2.OperationalError:
            calls.append("refused")
            refused.set()
            raise

    monkeypatch.setattr(psycopg2, "connect", counting_connect)
    options = f"-p {cluster.port} -k {cluster.datadir.parent} -c listen_addresses=127.0.0.1"
    _run([cluster.pg_ctl, "-D", str(cluster.datadir), "-m", "fast", "-w", "stop"], cluster.run_as)
    config = PostgresConfig.model_validate(
        {"type": "postgres", "host": "127.0.0.1", "port": cluster.port, "user": "postgres", "database": "postgres",
         "table": "t", "connect_attempts": 30, "retry_initial_delay": 0.05, "retry_max_delay": 0.5}
    )
    outcome: dict[str, object] = {}

    def connect_in_background() -> None:
        try:
            conn = connect(config)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                outcome["value"] = cur.fetchone()[0]
            conn.close()
        except Exception as exc:  # reported to the test thread below
            outcome["error"] = exc

    client = threading.Thread(target=connect_in_background)
    client.start()
    assert refused.wait(timeout=60)
    # The server comes back while the client is retrying.
    _run([cluster.pg_ctl, "-D", str(cluster.datadir), "-o", options, "-l", str(cluster.datadir.parent / "log"),
          "-w", "start"], cluster.run_as)
    client.join(timeout=120)
    assert outcome == {"value": 1}
    assert calls and set(calls) == {"refused"}
