"""Packaging: the entry point registers the connector, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dataloader.errors import ConnectorError
from dataloader.plugins import PluginHost
from dataloader_postgres.config import PostgresConfig
from pydantic import ValidationError


def test_entry_point_registers_postgres_with_its_capabilities():
    registration = PluginHost().registry.get("connector", "postgres")
    assert registration.distribution == "dataloader-connector-postgres"
    caps = registration.factory.capabilities
    assert caps.read and caps.write and caps.transactional
    assert caps.write_modes == {"append", "overwrite", "merge"}
    assert caps.incremental_strategies == {"cursor"}


def test_importing_the_plugin_does_not_import_the_driver():
    code = "import sys, dataloader_postgres.plugin; print('psycopg2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_missing_driver_names_the_install_command(monkeypatch):
    from dataloader_postgres import connection

    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ConnectorError, match=r"pip install --find-links WHEELS 'dataloader\[postgres\]=="):
        connection.driver()


def test_config_needs_table_or_query_and_rejects_unknown_keys():
    with pytest.raises(ValidationError, match="needs `table`"):
        PostgresConfig.model_validate({"type": "postgres"})
    with pytest.raises(ValidationError, match="either `table` or `query`"):
        PostgresConfig.model_validate({"type": "postgres", "table": "a", "query": "select 1"})
    with pytest.raises(ValidationError, match="hostname"):
        PostgresConfig.model_validate({"type": "postgres", "table": "a", "hostname": "x"})


def test_schema_dot_table_splits_on_the_first_dot_unless_schema_is_given():
    assert PostgresConfig(type="postgres", table="sales.orders").qualified_table() == ("sales", "orders")
    assert PostgresConfig(type="postgres", table="orders").qualified_table() == ("public", "orders")
    assert PostgresConfig(type="postgres", table="a.b", schema="s").qualified_table() == ("s", "a.b")


def test_passwords_are_scrubbed_from_messages():
    from dataloader_postgres.connection import scrub

    assert "pw1" not in scrub("bad dsn host=x password=pw1 user=y", [])
    assert "pw2" not in scrub("could not parse postgresql://me:pw2@db/x", [])
    assert "pw3" not in scrub("anything mentioning pw3", ["pw3"])
