"""Fixtures: a real PostgreSQL server, a database of the session's own, connector configs.

Each test session creates a database with a random name and drops it at the end. Without a
server the tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dataloader.connector import RunContext
from dataloader_postgres.config import PostgresConfig
from dataloader_postgres.connector import PostgresConnector
from dataloader_postgres.testing import pg, pg_params, pg_server, section  # noqa: F401  (fixtures)


@pytest.fixture
def connector(section: Callable[..., dict[str, Any]]) -> Iterator[Callable[..., PostgresConnector]]:  # noqa: F811
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
