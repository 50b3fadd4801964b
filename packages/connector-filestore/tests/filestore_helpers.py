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


class Cli:
    """``dataloader run`` through the real command line (click), one recipe file and state folder per call."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"

    def write(self, recipe: dict[str, Any], name: str = "recipe.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(json.dumps(recipe, indent=2))  # JSON is YAML
        return path

    def run(self, recipe: dict[str, Any], *args: str) -> Any:
        from click.testing import CliRunner
        from dataloader.cli import cli

        path = self.write(recipe)
        return CliRunner().invoke(cli, ["run", str(path), "--state-dir", str(self.state_dir), *args])

    def state(self, name: str) -> dict[str, Any] | None:
        path = self.state_dir / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file below ``path`` with its bytes (to show a failed run changed nothing)."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
