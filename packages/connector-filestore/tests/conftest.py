"""Fixtures for the filestore tests: real files in a temporary folder, recipes through the real engine.

Plugins are registered explicitly (this package, plus DuckDB when it is installed) so that the
tests do not depend on what else is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dataloader_filestore.plugin
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataloader.plugins import PluginHost, use_host
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend

REPO = Path(__file__).resolve().parents[3]
CUSTOMERS_CSV = REPO / "examples" / "data" / "customers.csv"


def duckdb_plugin() -> Any:
    """The DuckDB connector's plugin module; skipped when missing, unless running in CI."""
    try:
        import dataloader_duckdb.plugin as plugin
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("dataloader-connector-duckdb is not installed")
    return plugin


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


class Runner:
    """Runs recipes (``source`` and ``destination`` sections) with one state folder per test."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = LocalStateBackend(tmp_path / "state")

    def recipe(self, source: dict[str, Any], destination: dict[str, Any], name: str = "t", **runtime: Any) -> Recipe:
        data: dict[str, Any] = {"name": name, "source": source, "destination": destination}
        if runtime:
            data["runtime"] = runtime
        return Recipe.from_dict(data)

    def __call__(self, source: dict[str, Any], destination: dict[str, Any], name: str = "t", **runtime: Any) -> Any:
        from dataloader import run_recipe

        return run_recipe(self.recipe(source, destination, name, **runtime), self.state, history=False)


@pytest.fixture
def run(host: PluginHost, tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def read_dataset(path: Path) -> pa.Table | None:
    """What a manifest-aware reader sees in a Parquet dataset directory."""
    import json

    manifest = path / "_dataloader_manifest.json"
    if not manifest.exists():
        return None
    parts = json.loads(manifest.read_text())["parts"]
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(path / part["name"]) for part in parts])


def dataset_dest(path: Path, fmt: str = "parquet", **extra: Any) -> dict[str, Any]:
    return {"type": "filestore", "path": str(path), "format": fmt, **extra}
