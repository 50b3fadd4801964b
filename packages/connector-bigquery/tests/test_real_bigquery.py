"""What only the real service shows; run when DATALOADER_TEST_BIGQUERY_PROJECT is set.

Credentials: DATALOADER_TEST_BIGQUERY_CREDENTIALS_FILE (a service-account key file), else
application default credentials. DATALOADER_TEST_BIGQUERY_LOCATION optionally picks the location.
Each test uses a dataset of its own and deletes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from dataloader.engine import run_recipe
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend
from dataloader.testing import MEMORY_TABLES, plugin_host

PROJECT = os.environ.get("DATALOADER_TEST_BIGQUERY_PROJECT")
pytestmark = [
    pytest.mark.real_bigquery,
    pytest.mark.skipif(not PROJECT, reason="set DATALOADER_TEST_BIGQUERY_PROJECT (and credentials) to run against BigQuery"),
]


@pytest.fixture
def keys() -> Iterator[dict[str, Any]]:
    from google.cloud import bigquery

    dataset = f"dataloader_test_{uuid.uuid4().hex[:10]}"
    keys: dict[str, Any] = {"type": "bigquery", "project": PROJECT, "dataset": dataset}
    if os.environ.get("DATALOADER_TEST_BIGQUERY_CREDENTIALS_FILE"):
        keys["service_account_file"] = os.environ["DATALOADER_TEST_BIGQUERY_CREDENTIALS_FILE"]
    if os.environ.get("DATALOADER_TEST_BIGQUERY_LOCATION"):
        keys["location"] = os.environ["DATALOADER_TEST_BIGQUERY_LOCATION"]
    yield keys
    client = bigquery.Client(project=PROJECT)
    client.delete_dataset(f"{PROJECT}.{dataset}", delete_contents=True, not_found_ok=True)


def _run(tmp_path: Path, source: dict[str, Any], destination: dict[str, Any], **runtime: Any) -> Any:
    import dataloader_bigquery.plugin

    recipe = Recipe.from_dict({"name": "real", "source": source, "destination": destination, "runtime": runtime})
    host = plugin_host(dataloader_bigquery.plugin, entry_points=False)
    return run_recipe(recipe, LocalStateBackend(tmp_path / "state"), host=host, history=False)


def test_bytes_lists_and_bignumeric_round_trip_on_the_service(keys: dict[str, Any], tmp_path: Path) -> None:
    import decimal

    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "raw": pa.array([b"\x00\xff", b""], pa.binary()),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
        "big": pa.array([decimal.Decimal("1" * 38 + "." + "1" * 38), decimal.Decimal(0)], pa.decimal256(76, 38)),
    })
    MEMORY_TABLES["real"] = table
    _run(tmp_path, {"type": "contract_memory", "table": "real"}, {**keys, "table": "t", "write_mode": "merge", "merge_keys": ["id"]})
    _run(tmp_path / "read", {**keys, "table": "t"}, {"type": "contract_memory", "table": "back"}, parallelism=2)
    back = MEMORY_TABLES["back"].sort_by("id")
    for name in table.column_names:
        assert back.column(name).to_pylist() == table.column(name).to_pylist(), name
