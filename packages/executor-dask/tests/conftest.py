"""Fixtures: one LocalCluster with 2 worker processes for the module, a Postgres database of our own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """Two worker processes. Each worker process pauses once at its first batch read, so a test has
    time to kill a worker while it holds a task (Dask restarts it and runs the task again)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        env={"DATALOADER_FAULT_PAUSE": "batch_read:1.5"},
    )
    client = Client(cluster)
    try:
        yield cluster
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def pg_params() -> Iterator[dict[str, Any]]:
    import psycopg2
    from psycopg2.extensions import parse_dsn

    dsn = os.environ.get("DATALOADER_TEST_POSTGRES_DSN")
    server = dict(parse_dsn(dsn)) if dsn else {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
    try:
        admin = psycopg2.connect(**server, connect_timeout=5)
    except psycopg2.Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL server for the tests under CI: {exc}")
        pytest.skip(f"no PostgreSQL server available: {exc}")
    admin.autocommit = True
    name = f"dl_dask_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**server, "dbname": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg(pg_params: dict[str, Any]) -> Iterator[Any]:
    import psycopg2

    conn = psycopg2.connect(**pg_params)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def pg_section(pg_params: dict[str, Any]) -> Any:
    def make(**extra: Any) -> dict[str, Any]:
        base = {
            "type": "postgres",
            "host": pg_params.get("host", "127.0.0.1"),
            "port": int(pg_params.get("port", 5432)),
            "database": pg_params["dbname"],
            "user": pg_params.get("user", "postgres"),
        }
        if pg_params.get("password"):
            base["password"] = pg_params["password"]
        return {**base, **extra}

    return make
