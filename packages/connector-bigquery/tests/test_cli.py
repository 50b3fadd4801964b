"""Recipes through the command line against the emulator: CSV → BigQuery merge, BigQuery → Parquet."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from conftest import Warehouse, people
from dataloader.cli import cli

pytest.importorskip("dataloader_filestore")


def _write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


def test_csv_merge_run_twice_updates_and_inserts(warehouse: Warehouse, tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_text("id,name,amount\n1,Ada,10.50\n2,Alan,20.00\n2,Alan T.,21.00\n")
    recipe = _write_recipe(
        tmp_path / "csv_to_bq.yaml",
        {
            "name": "csv_to_bq",
            "source": {"type": "filestore", "path": str(csv), "format": "csv",
                       "options": {"column_types": {"amount": "decimal(12,2)"}}},
            "destination": {**warehouse.keys(table="customers"), "write_mode": "merge", "merge_keys": ["id"]},
        },
    )
    first = _run(str(recipe), "--state-dir", str(tmp_path / "state"))
    assert first.exit_code == 0, first.output
    assert warehouse.rows("SELECT id, name, amount FROM `{ds}.customers` ORDER BY id") == [
        (1, "Ada", Decimal("10.5")), (2, "Alan T.", Decimal("21"))
    ]
    csv.write_text("id,name,amount\n2,Alan Turing,22.00\n3,Grace,5.25\n")
    second = _run(str(recipe), "--state-dir", str(tmp_path / "state"))
    assert second.exit_code == 0, second.output
    assert warehouse.rows("SELECT id, name, amount FROM `{ds}.customers` ORDER BY id") == [
        (1, "Ada", Decimal("10.5")), (2, "Alan Turing", Decimal("22")), (3, "Grace", Decimal("5.25"))
    ]
    assert warehouse.count("customers") == 3
    # The commit record of the second run sits beside the rows; no staging table is left.
    (record,) = warehouse.rows("SELECT state FROM `{ds}._dataloader_state` WHERE recipe_name = 'csv_to_bq'")
    assert json.loads(record[0])["published"]["rows"] == 2
    assert not [t for t in warehouse.bq.list_tables(warehouse.dataset) if t.table_id.startswith("_dataloader_stage_")]


def test_bigquery_to_parquet_incremental_reads_only_new_rows(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.seed(people([1, 2, 3], updated=[10, 10, 20]))
    lake = tmp_path / "lake"
    recipe = _write_recipe(
        tmp_path / "bq_to_parquet.yaml",
        {
            "name": "bq_to_parquet",
            "source": {**warehouse.keys(table="src"),
                       "incremental": {"strategy": "cursor", "cursor_column": "updated", "primary_key": ["id"]}},
            "destination": {"type": "filestore", "path": str(lake), "format": "parquet"},
        },
    )
    first = _run(str(recipe), "--state-dir", str(tmp_path / "state"))
    assert first.exit_code == 0, first.output
    # A tie at the high-water mark (20) and a newer row arrive; only those two are read next.
    warehouse.seed(people([4, 5], updated=[20, 30]), append=True)
    second = _run(str(recipe), "--state-dir", str(tmp_path / "state"))
    assert second.exit_code == 0, second.output
    third = _run(str(recipe), "--state-dir", str(tmp_path / "state"))
    assert third.exit_code == 0, third.output
    table = pq.read_table(lake)
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3, 4, 5]


def test_bad_endpoint_is_one_clear_message_without_traceback(tmp_path: Path) -> None:
    from bqemulator import free_port

    recipe = _write_recipe(
        tmp_path / "unreachable.yaml",
        {
            "name": "unreachable",
            "source": {"type": "bigquery", "project": "p", "anonymous": True, "table": "ds.t",
                       "api_endpoint": f"http://127.0.0.1:{free_port()}", "retry_deadline_s": 1, "timeout_s": 2},
            "destination": {"type": "filestore", "path": str(tmp_path / "out"), "format": "parquet"},
        },
    )
    result = CliRunner().invoke(cli, ["run", str(recipe), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "bigquery (project p at http://127.0.0.1:" in result.output


def test_render_masks_inline_credentials(tmp_path: Path) -> None:
    key = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SECRETVALUE"})
    recipe = _write_recipe(
        tmp_path / "secret.yaml",
        {
            "name": "secret",
            "source": {"type": "filestore", "path": str(tmp_path / "in.csv"), "format": "csv"},
            "destination": {"type": "bigquery", "project": "p", "dataset": "d", "table": "t", "credentials_json": key},
        },
    )
    result = CliRunner().invoke(cli, ["render", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "SECRETVALUE" not in result.output and "********" in result.output


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"table": "a.b.c.d"}, "must be name, dataset.name or project.dataset.name"),
        ({"table": "t", "dataset": None}, "has no dataset"),
        ({"credentials_json": "{not json SECRETVALUE"}, "credentials_json is not valid JSON"),
        ({"incremental": {"strategy": "modified_time"}}, "cursor' only"),
    ],
    ids=["table-parts", "no-dataset", "bad-json", "strategy"],
)
def test_validate_names_the_key_and_never_echoes_a_secret(tmp_path: Path, keys: dict[str, Any], message: str) -> None:
    source = {"type": "bigquery", "project": "p", "dataset": "d", "table": "t", **keys}
    source = {k: v for k, v in source.items() if v is not None}
    recipe = _write_recipe(
        tmp_path / "bad.yaml",
        {"name": "bad", "source": source, "destination": {"type": "filestore", "path": str(tmp_path / "o"), "format": "parquet"}},
    )
    result = CliRunner().invoke(cli, ["validate", str(recipe)])
    assert result.exit_code == 1
    assert message in result.output and "source" in result.output
    assert "SECRETVALUE" not in result.output and "Traceback" not in result.output
