"""Entry point of the ``snowflake`` connector (group ``dataloader``, name ``snowflake``).

Cheap to import: the connector module, and with it ``snowflake-connector-python`` and pyarrow,
loads only when a recipe builds a connector.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl

from dataloader_snowflake.capabilities import CAPABILITIES
from dataloader_snowflake.config import SnowflakeConfig


def build_connector(config: SnowflakeConfig) -> Any:
    """Build a :class:`~dataloader_snowflake.connector.SnowflakeConnector` for ``config``."""
    from dataloader_snowflake.connector import SnowflakeConnector

    return SnowflakeConnector(config)


build_connector.capabilities = CAPABILITIES  # type: ignore[attr-defined]


@hookimpl
def register_connectors(register: Any) -> None:
    register("snowflake", build_connector, config=SnowflakeConfig)
