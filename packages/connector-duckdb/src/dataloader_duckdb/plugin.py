"""Entry point module (group ``dataloader``, name ``duckdb``): registers the connector.

Cheap to import: the connector is registered as a :class:`dataloader.plugins.PluginClass`, so its
module (and with it the ``duckdb`` driver and pyarrow) loads only when a recipe builds one; the
capabilities and the config model are data in light modules.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader.plugins import PluginClass

from dataloader_duckdb.capabilities import CAPABILITIES
from dataloader_duckdb.config import DuckDBConfig

CONNECTOR = PluginClass("dataloader_duckdb.connector:DuckDBConnector", capabilities=CAPABILITIES)


@hookimpl
def register_connectors(register: Any) -> None:
    register("duckdb", CONNECTOR, config=DuckDBConfig)
