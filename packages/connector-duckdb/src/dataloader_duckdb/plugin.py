"""Entry point module (group ``dataloader``, name ``duckdb``): registers the connector.

Kept cheap to import: neither this module nor the modules it imports load the ``duckdb`` driver.
"""

from __future__ import annotations

from dataloader import hookimpl

from dataloader_duckdb.config import DuckDBConfig
from dataloader_duckdb.connector import DuckDBConnector


@hookimpl
def register_connectors(register):  # type: ignore[no-untyped-def]
    register("duckdb", DuckDBConnector, config=DuckDBConfig)
