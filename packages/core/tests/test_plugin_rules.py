"""The plugin rules a third party relies on: name clashes, disabling entry points, misspelt hooks."""

from __future__ import annotations

from typing import Any

import pytest
from dataloader.config import ConnectorConfig
from dataloader.connector import BaseConnector
from dataloader.errors import PluginError
from dataloader.hookspecs import hookimpl
from dataloader.plugins import PluginHost


class One(BaseConnector):
    pass


class FirstVendor:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("warehouse", One, config=ConnectorConfig)


class SecondVendor:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("warehouse", One, config=ConnectorConfig)


class Misspelt:
    @hookimpl
    def register_conectors(self, register: Any) -> None:  # one 'n' short
        raise AssertionError("never called")


def test_a_name_registered_by_two_distributions_names_both_when_used():
    host = PluginHost(load_entrypoints=False)
    host.register(FirstVendor(), name="first", distribution="dataloader-connector-first")
    host.register(SecondVendor(), name="second", distribution="dataloader-connector-second")
    with pytest.raises(PluginError) as caught:
        host.registry.get("connector", "warehouse")
    message = str(caught.value)
    assert "dataloader-connector-first" in message and "dataloader-connector-second" in message
    assert "DATALOADER_DISABLE_PLUGINS" in message
    assert caught.value.context["distributions"] == ["dataloader-connector-first", "dataloader-connector-second"]


def test_a_misspelt_hook_is_refused_naming_the_plugin():
    host = PluginHost(load_entrypoints=False)
    with pytest.raises(PluginError, match="plugin 'typo' implements a hook dataloader does not define"):
        host.register(Misspelt(), name="typo", distribution="dataloader-connector-typo")
    # ...and it left nothing behind: the host still works.
    assert "local" in host.registry.names("state_backend")


def test_disabled_entry_points_are_not_loaded(monkeypatch):
    enabled = PluginHost(load_entrypoints=True)
    names = set(enabled.registry.names("connector"))
    if "duckdb" not in names:
        pytest.skip("needs the duckdb connector installed (tox env integration)")
    monkeypatch.setenv("DATALOADER_DISABLE_PLUGINS", "duckdb, nonexistent")
    disabled = PluginHost(load_entrypoints=True)
    assert "duckdb" not in disabled.registry.names("connector")
    assert set(disabled.registry.names("connector")) == names - {"duckdb"}
