"""Fixtures for the DuckDB connector tests: real database files in a temporary folder.

Recipes run through the real engine with a plugin host that registers this package's plugin
explicitly, so the tests do not depend on what else is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dataloader_duckdb.plugin
import duckdb
import pyarrow as pa
import pytest
from dataloader.connector import RunContext
from dataloader.engine import RunResult, run_recipe
from dataloader.plugins import PluginHost
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend
from dataloader_duckdb.config import DuckDBConfig
from dataloader_duckdb.connector import DuckDBConnector


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run history and dead-letter files land in the test's own folder."""
    monkeypatch.setenv("DATALOADER_HISTORY", str(tmp_path / "history" / "runs.db"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(load_entrypoints=False)
    host.register(dataloader_duckdb.plugin, name="duckdb", distribution="dataloader-connector-duckdb")
    return host


class Warehouse:
    """A pair of DuckDB files: ``source.duckdb`` to seed, ``target.duckdb`` to load into."""

    def __init__(self, root: Path, host: PluginHost) -> None:
        self.root = root
        self.host = host
        self.source_db = str(root / "source.duckdb")
        self.target_db = str(root / "target.duckdb")

    # seeding and reading ----------------------------------------------------------------
    def seed(self, table: pa.Table, name: str = "src", *, database: str | None = None, replace: bool = True) -> None:
        con = duckdb.connect(database or self.source_db)
        try:
            con.register("seed_rows", table)
            verb = "CREATE OR REPLACE TABLE" if replace else "INSERT INTO"
            tail = "AS SELECT * FROM seed_rows" if replace else "SELECT * FROM seed_rows"
            con.execute(f"{verb} {name} {tail}")
        finally:
            con.close()

    def query(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        con = duckdb.connect(database or self.target_db, read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def arrow(self, sql: str, database: str | None = None) -> pa.Table:
        con = duckdb.connect(database or self.target_db, read_only=True)
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    # running ----------------------------------------------------------------------------
    def run(
        self,
        destination: dict[str, Any],
        source: dict[str, Any] | None = None,
        *,
        name: str = "load",
        batch_size: int = 2,
        transform: list[dict[str, Any]] | None = None,
        **runtime: Any,
    ) -> RunResult:
        recipe = {
            "name": name,
            "source": source or {"type": "duckdb", "database": self.source_db, "table": "src"},
            "destination": {"type": "duckdb", "database": self.target_db, **destination},
            "runtime": {"batch_size": batch_size, **runtime},
        }
        if transform:
            recipe["transform"] = {"steps": transform}
        built = Recipe.from_dict(recipe)
        return run_recipe(built, LocalStateBackend(self.root / "state"), host=self.host, history=False)

    def destination(self, table: str = "t", **keys: Any) -> DuckDBConnector:
        """A destination connector driven directly, as the engine would."""
        config = DuckDBConfig(type="duckdb", database=self.target_db, table=table, **keys)
        connector = DuckDBConnector(config)
        connector.context = RunContext(recipe_name="direct", run_id="direct-run", role="destination")
        return connector

    def source(self, **keys: Any) -> DuckDBConnector:
        keys.setdefault("table", "src")
        connector = DuckDBConnector(DuckDBConfig(type="duckdb", database=self.source_db, **keys))
        connector.context = RunContext(role="source", batch_size=2)
        return connector


@pytest.fixture
def warehouse(tmp_path: Path, host: PluginHost) -> Warehouse:
    return Warehouse(tmp_path, host)


def people(ids: list[int], names: list[str] | None = None) -> pa.Table:
    names = names or [f"person {i}" for i in ids]
    return pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())})


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``dataloader ARGS...`` in a fresh interpreter, as a user runs it (installed plugins, real exit code)."""
    return subprocess.run(
        [sys.executable, "-c", "from dataloader.cli import console_main; console_main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "DATALOADER_HISTORY": str(cwd / "history" / "runs.db"), **(env or {})},
        timeout=timeout,
    )


def write_recipe(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path
