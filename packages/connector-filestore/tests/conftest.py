"""Fixtures for the filestore tests: real files in a temporary folder, recipes through the real engine.

Plugins are registered explicitly (this package, plus DuckDB where a test adds it) so that the
tests do not depend on what else is installed. Shared helpers live in ``filestore_helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dataloader_filestore.plugin
import pytest
from dataloader.plugins import PluginHost, use_host
from filestore_helpers import Cli, Runner


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run history and dead-letter files land in the test's own folder."""
    monkeypatch.setenv("DATALOADER_HISTORY", "off")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def host() -> Iterator[PluginHost]:
    host = PluginHost(load_entrypoints=False)
    host.register(dataloader_filestore.plugin, name="filestore", distribution="dataloader-connector-filestore")
    with use_host(host):
        yield host


@pytest.fixture
def run(host: PluginHost, tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def cli(host: PluginHost, tmp_path: Path) -> Cli:
    return Cli(tmp_path)
