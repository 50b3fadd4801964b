"""Fixtures for the BigQuery connector tests: the local-bigquery emulator on loopback.

One emulator per test session (see ``bqemulator.py``); each test gets its own dataset. With
``CI`` set, an emulator that cannot be built or started fails the tests instead of skipping them.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dataloader_bigquery.plugin
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataloader.connector import RunContext
from dataloader.engine import RunResult, run_recipe
from dataloader.plugins import PluginHost, use_host
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend
from dataloader.testing import plugin_host
from dataloader_bigquery import types
from dataloader_bigquery.config import BigQueryConfig
from dataloader_bigquery.connector import BigQueryConnector

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bqemulator  # noqa: E402
import gcsemulator  # noqa: E402

_datasets = itertools.count()


@pytest.fixture(scope="session")
def _gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gcsemulator.GcsEmulator | str]:
    """The GCS emulator, or why it could not start (the ``gcs`` fixture fails or skips on that)."""
    try:
        server = gcsemulator.start(tmp_path_factory.mktemp("gcs-emulator"))
    except gcsemulator.GcsUnavailable as exc:
        yield str(exc)
        return
    yield server
    server.stop()


@pytest.fixture(scope="session")
def emulator(
    tmp_path_factory: pytest.TempPathFactory, _gcs_server: gcsemulator.GcsEmulator | str
) -> Iterator[bqemulator.Emulator]:
    storage_host = _gcs_server.endpoint if isinstance(_gcs_server, gcsemulator.GcsEmulator) else None
    try:
        server = bqemulator.start(tmp_path_factory.mktemp("bigquery-emulator"), storage_emulator_host=storage_host)
    except bqemulator.EmulatorUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the BigQuery emulator is required in CI: {exc}")
        pytest.skip(f"BigQuery emulator unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture
def gcs(_gcs_server: gcsemulator.GcsEmulator | str, emulator: bqemulator.Emulator) -> gcsemulator.GcsEmulator:
    """The GCS emulator the BigQuery emulator reads ``gs://`` URIs from."""
    if isinstance(_gcs_server, str):
        if os.environ.get("CI"):
            pytest.fail(f"the GCS emulator is required in CI: {_gcs_server}")
        pytest.skip(f"GCS emulator unavailable: {_gcs_server}")
    return _gcs_server


@pytest.fixture(scope="session")
def bq(emulator: bqemulator.Emulator) -> Any:
    """A plain client on the emulator, for seeding and checking (not the code under test)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=emulator.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator.api_endpoint}
    )


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATALOADER_HISTORY", str(tmp_path / "history" / "runs.db"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def host() -> PluginHost:
    """This package's plugin plus the contract kit's in-memory connector; no entry points."""
    return plugin_host(dataloader_bigquery.plugin, entry_points=False)


class Warehouse:
    """One dataset of the emulator: seed tables, query them, run recipes into them."""

    def __init__(self, emulator: bqemulator.Emulator, bq: Any, dataset: str, root: Path, host: PluginHost) -> None:
        self.emulator = emulator
        self.bq = bq
        self.dataset = dataset
        self.root = root
        self.host = host

    def keys(self, **extra: Any) -> dict[str, Any]:
        return {"type": "bigquery", **self.emulator.connection_keys(), "dataset": self.dataset, **extra}

    def seed(self, table: pa.Table, name: str = "src", *, append: bool = False) -> None:
        from google.cloud import bigquery

        buffer = io.BytesIO()
        pq.write_table(table.cast(types.load_schema(table.schema)), buffer)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format="PARQUET",
            schema=types.schema_fields(table.schema),
            write_disposition="WRITE_APPEND" if append else "WRITE_TRUNCATE",
        )
        self.bq.load_table_from_file(buffer, f"{self.dataset}.{name}", job_config=config).result()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self.bq.query_and_wait(sql.format(ds=self.dataset))]

    def count(self, table: str) -> int:
        return self.rows(f"SELECT COUNT(*) FROM `{self.dataset}.{table}`")[0][0]

    def arrow(self, sql: str) -> pa.Table:
        return self.bq.query_and_wait(sql.format(ds=self.dataset)).to_arrow(create_bqstorage_client=False)

    def exists(self, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.bq.get_table(f"{self.dataset}.{table}")
        except NotFound:
            return False
        return True

    def run(self, source: dict[str, Any], destination: dict[str, Any], *, name: str = "load", **runtime: Any) -> RunResult:
        with use_host(self.host):
            recipe = Recipe.from_dict(
                {"name": name, "source": source, "destination": destination, "runtime": {"batch_size": 2, **runtime}}
            )
            return run_recipe(recipe, LocalStateBackend(self.root / "state"), host=self.host, history=False)

    def connector(self, role: str = "destination", **keys: Any) -> BigQueryConnector:
        config = BigQueryConfig(**self.keys(**keys))
        connector = BigQueryConnector(config)
        connector.context = RunContext(recipe_name="direct", run_id="direct-run", role=role, batch_size=2)
        return connector


def new_dataset(bq: Any) -> str:
    name = f"t{os.getpid()}_{next(_datasets)}"
    bq.create_dataset(name)
    return name


@pytest.fixture
def warehouse(emulator: bqemulator.Emulator, bq: Any, tmp_path: Path, host: PluginHost) -> Warehouse:
    return Warehouse(emulator, bq, new_dataset(bq), tmp_path, host)


def people(ids: list[int], names: list[str] | None = None, updated: list[int] | None = None) -> pa.Table:
    names = names or [f"person {i}" for i in ids]
    columns = {"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())}
    if updated is not None:
        columns["updated"] = pa.array(updated, pa.int64())
    return pa.table(columns)
