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


# -- PluginClass: the one way connectors register --------------------------------------------
_LAZY_MODULE = '''
import sys
from dataloader.connector import BaseConnector, Capabilities

IMPORTED = True
CAPS = Capabilities(read=True, write=False)


class Lazy(BaseConnector):
    capabilities = CAPS


class Liar(BaseConnector):
    capabilities = Capabilities(read=True, write=True)


NOT_A_CLASS = 3
'''


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    import sys

    (tmp_path / "lazy_vendor_connector.py").write_text(_LAZY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_vendor_connector", raising=False)
    yield "lazy_vendor_connector"
    sys.modules.pop("lazy_vendor_connector", None)


def _vendor(factory: Any) -> Any:
    class Vendor:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            register("lazy", factory, config=ConnectorConfig)

    return Vendor()


def test_a_plugin_class_is_imported_only_when_a_connector_is_built(lazy_module):
    import sys

    from dataloader.connector import Capabilities
    from dataloader.plugins import PluginClass

    caps = Capabilities(read=True, write=False)
    host = PluginHost(load_entrypoints=False)
    host.register(_vendor(PluginClass(f"{lazy_module}:Lazy", capabilities=caps)), name="vendor")
    registration = host.registry.get("connector", "lazy")
    assert registration.factory.capabilities == caps  # known before the import
    assert lazy_module not in sys.modules
    connector = registration.build(ConnectorConfig(type="lazy"))
    assert lazy_module in sys.modules and type(connector).__name__ == "Lazy"
    assert connector.capabilities == caps


def test_a_plugin_class_that_says_other_capabilities_than_its_registration_is_refused(lazy_module):
    from dataloader.connector import Capabilities
    from dataloader.plugins import PluginClass

    factory = PluginClass(f"{lazy_module}:Liar", capabilities=Capabilities(read=True, write=False))
    with pytest.raises(PluginError, match=f"'{lazy_module}:Liar' declares other capabilities than it was registered with"):
        factory(ConnectorConfig(type="lazy"))


@pytest.mark.parametrize("path, message", [
    ("no_colon_here", "must read 'package.module:ClassName'"),
    (":Lazy", "must read 'package.module:ClassName'"),
])
def test_a_malformed_plugin_class_path_is_refused_at_registration(path, message):
    from dataloader.plugins import PluginClass

    with pytest.raises(PluginError, match=message):
        PluginClass(path)


def test_a_plugin_class_naming_no_class_is_one_clear_error(lazy_module):
    from dataloader.plugins import PluginClass

    for name in ("Missing", "NOT_A_CLASS"):
        with pytest.raises(PluginError, match=f"no class {name} in {lazy_module}"):
            PluginClass(f"{lazy_module}:{name}")(ConnectorConfig(type="lazy"))


# -- validation honours the host it is given ------------------------------------------------
def test_check_file_looks_connectors_up_in_the_given_host(tmp_path):
    """``dataloader validate``'s engine (``check_file``) uses the caller's host, not the process-wide one."""
    from dataloader.plugins import use_host
    from dataloader.recipe.check import check_file
    from dataloader.testing import plugin_host

    recipe = tmp_path / "private.yaml"
    recipe.write_text(
        "name: private\nsource: {type: contract_memory, table: src}\ndestination: {type: contract_memory, table: out}\n",
        encoding="utf-8",
    )
    private = plugin_host(entry_points=False)
    with use_host(PluginHost(load_entrypoints=False)):
        assert check_file(recipe, host=private).ok
        without = check_file(recipe)
    assert not without.ok
    assert any("contract_memory" in problem.message for problem in without.problems)
