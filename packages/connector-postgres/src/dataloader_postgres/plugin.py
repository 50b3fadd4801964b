"""Entry point of the ``postgres`` connector and state backend.

Cheap to import: the connector is registered as a :class:`dataloader.plugins.PluginClass`, so its
module (and with it psycopg2, numpy and Arrow's CSV reader) loads only when a recipe builds one;
what the core needs before that, the capabilities and the config model, is data in light modules.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader.plugins import PluginClass

from dataloader_postgres.capabilities import CAPABILITIES
from dataloader_postgres.config import PostgresConfig

CONNECTOR = PluginClass("dataloader_postgres.connector:PostgresConnector", capabilities=CAPABILITIES)


@hookimpl
def register_connectors(register: Any) -> None:
    register("postgres", CONNECTOR, config=PostgresConfig)


@hookimpl
def register_state_backends(register: Any) -> None:
    from dataloader_postgres.state_backend import PostgresStateBackend, PostgresStateConfig

    register("postgres", PostgresStateBackend, config=PostgresStateConfig)
