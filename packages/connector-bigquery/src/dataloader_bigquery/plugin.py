"""Entry point of the ``bigquery`` connector.

Cheap to import: neither this module nor what it imports loads ``google-cloud-bigquery``, gRPC or
Arrow; the connector module loads when a recipe builds a connector.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl
from dataloader.plugins import PluginClass

from dataloader_bigquery.capabilities import CAPABILITIES
from dataloader_bigquery.config import BigQueryConfig

CONNECTOR = PluginClass("dataloader_bigquery.connector:BigQueryConnector", capabilities=CAPABILITIES)


@hookimpl
def register_connectors(register: Any) -> None:
    register("bigquery", CONNECTOR, config=BigQueryConfig)
