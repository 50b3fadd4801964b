"""Helpers shared by the filestore tests (kept out of conftest.py so that imports are unambiguous)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
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


def read_dataset(path: Path) -> pa.Table | None:
    """What a manifest-aware reader sees in a Parquet dataset directory."""
    manifest = path / "_dataloader_manifest.json"
    if not manifest.exists():
        return None
    parts = json.loads(manifest.read_text())["parts"]
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(path / part["name"]) for part in parts])


def dataset_dest(path: Path | str, fmt: str = "parquet", **extra: Any) -> dict[str, Any]:
    return {"type": "filestore", "path": str(path), "format": fmt, **extra}
