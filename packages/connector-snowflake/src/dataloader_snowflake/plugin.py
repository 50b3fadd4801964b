"""Entry point of the ``snowflake`` connector (group ``dataloader``, name ``snowflake``).

Cheap to import: the connector module, and with it ``snowflake-connector-python`` and pyarrow,
loads only when a recipe builds a connector.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader.plugins import PluginClass

from dataloader_snowflake.capabilities import CAPABILITIES
from dataloader_snowflake.config import SnowflakeConfig

CONNECTOR = PluginClass("dataloader_snowflake.connector:SnowflakeConnector", capabilities=CAPABILITIES)


@hookimpl
def register_connectors(register: Any) -> None:
    register("snowflake", CONNECTOR, config=SnowflakeConfig)
