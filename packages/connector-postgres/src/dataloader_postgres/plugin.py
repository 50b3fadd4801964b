"""Entry point of the ``postgres`` connector.

Cheap to import: the connector module (and with it psycopg2, numpy and Arrow's CSV reader) loads
only when a recipe builds a connector.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl

from dataloader_postgres.capabilities import CAPABILITIES
from dataloader_postgres.config import PostgresConfig


def build_connector(config: PostgresConfig) -> Any:
    """Build a :class:`~dataloader_postgres.connector.PostgresConnector` for ``config``."""
    from dataloader_postgres.connector import PostgresConnector

    return PostgresConnector(config)


build_connector.capabilities = CAPABILITIES  # type: ignore[attr-defined]


@hookimpl
def register_connectors(register: Any) -> None:
    register("postgres", build_connector, config=PostgresConfig)


@hookimpl
def register_state_backends(register: Any) -> None:
    from dataloader_postgres.state_backend import PostgresStateBackend, PostgresStateConfig

    register("postgres", PostgresStateBackend, config=PostgresStateConfig)
