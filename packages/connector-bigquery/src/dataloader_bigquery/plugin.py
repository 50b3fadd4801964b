"""Entry point of the ``bigquery`` connector.

Cheap to import: neither this module nor what it imports loads ``google-cloud-bigquery``, gRPC or
Arrow; the connector module loads when a recipe builds a connector.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl

from dataloader_bigquery.capabilities import CAPABILITIES
from dataloader_bigquery.config import BigQueryConfig


def build_connector(config: BigQueryConfig) -> Any:
    """Build a :class:`~dataloader_bigquery.connector.BigQueryConnector` for ``config``."""
    from dataloader_bigquery.connector import BigQueryConnector

    return BigQueryConnector(config)


build_connector.capabilities = CAPABILITIES  # type: ignore[attr-defined]


@hookimpl
def register_connectors(register: Any) -> None:
    register("bigquery", build_connector, config=BigQueryConfig)
