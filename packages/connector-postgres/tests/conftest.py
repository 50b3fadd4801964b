"""Fixtures: a real PostgreSQL server, a database of the session's own, connector configs.

Each test session creates a database with a random name and drops it at the end. Without a
server the tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from dataloader.connector import RunContext
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector
from pgserver import find_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, Any]]:
    try:
        params, cluster = find_server()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL server for the tests under CI: {exc}")
        pytest.skip(f"no PostgreSQL server available: {exc}")
    try:
        yield params
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session")
def pg_params(pg_server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Connection parameters of this session's own database."""
    name = f"dl_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(**pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**pg_server, "dbname": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg(pg_params: dict[str, Any]) -> Iterator[Any]:
    """An autocommit connection to the test database, for arranging and checking."""
    conn = psycopg2.connect(**pg_params)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def section(pg_params: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A recipe section dict (``type: postgres`` + connection keys) plus ``extra`` keys."""

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


@pytest.fixture
def connector(section: Callable[..., dict[str, Any]]) -> Iterator[Callable[..., PostgresConnector]]:
    """Build opened connectors from section keys; all are closed after the test."""
    built: list[PostgresConnector] = []

    def make(*, role: str = "source", batch_size: int = 10_000, parallelism: int = 1, **extra: Any) -> PostgresConnector:
        config = PostgresConfig.model_validate(section(**extra))
        conn = PostgresConnector(config)
        conn.context = RunContext(recipe_name="test", run_id=uuid.uuid4().hex, role=role, batch_size=batch_size,
                                  parallelism=parallelism)
        conn.open()
        built.append(conn)
        return conn

    yield make
    for conn in built:
        conn.close()


@pytest.fixture
def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"
