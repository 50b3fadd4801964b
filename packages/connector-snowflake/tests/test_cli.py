"""Whole recipes through the command line against the emulator: CSV -> Snowflake merge run twice,
Snowflake -> DuckDB incremental, a failed run that leaves everything as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner
from conftest import query
from dataloader.cli import cli
from target import create_table, write_rows


def _recipe(path: Path, name: str, source: dict[str, Any], destination: dict[str, Any], **extra: Any) -> str:
    path.write_text(yaml.safe_dump({"name": name, "source": source, "destination": destination, **extra}))
    return str(path)


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("id,name,amount,updated_at\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _merge_recipe(tmp_path: Path, section: Any, table: str, csv: Path) -> str:
    source = {"type": "filestore", "path": str(csv), "format": "csv"}
    destination = section(table=table, write_mode="merge", merge_keys=["id"])
    steps = {"steps": [{"type": "cast", "columns": {"id": "int64", "amount": "decimal(12,2)", "updated_at": "timestamp"}}]}
    return _recipe(tmp_path / "merge.yaml", "csv_to_snowflake", source, destination, transform=steps)


def test_csv_merge_into_snowflake_run_twice_upserts_and_last_row_wins(sf, section, unique, tmp_path):
    table = unique("customers")
    csv = _csv(tmp_path / "customers.csv", ["1,Ada,10.50,2024-01-01 00:00:00", "2,Alan,20.00,2024-01-01 00:00:00"])
    recipe = _merge_recipe(tmp_path, section, table, csv)
    first = _run(recipe, "--state-dir", str(tmp_path / "state"))
    assert first.exit_code == 0, first.output
    # The second file updates 2 twice (the later row wins), adds 3 and leaves 1 alone.
    _csv(csv, ["2,first,1.00,2024-02-01 00:00:00", "3,Grace,30.25,2024-02-01 00:00:00", "2,Alan T.,21.00,2024-02-02 00:00:00"])
    second = _run(recipe, "--state-dir", str(tmp_path / "state"))
    assert second.exit_code == 0, second.output
    rows = query(sf, f'SELECT "id", "name", "amount"::VARCHAR FROM "{table.upper()}" ORDER BY "id"')
    assert rows == [(1, "Ada", "10.50"), (2, "Alan T.", "21.00"), (3, "Grace", "30.25")]
    # Running the same input again changes nothing (a merge is idempotent).
    third = _run(recipe, "--state-dir", str(tmp_path / "state"))
    assert third.exit_code == 0, third.output
    assert query(sf, f'SELECT COUNT(*) FROM "{table.upper()}"') == [(3,)]
    record = query(sf, 'SELECT run_id, state FROM "_dataloader_state" WHERE recipe_name = ?', ("csv_to_snowflake",))
    assert len(record) == 1 and json.loads(record[0][1])["published"]["mode"] == "merge"


def test_snowflake_to_duckdb_incremental_reads_each_row_once(sf, section, unique, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    table = unique("events")
    seed = section(table=f'"{table}"')

    def rows(ids: list[int], day: int) -> pa.Table:
        return pa.table({
            "id": pa.array(ids, pa.int64()),
            "payload": pa.array([f"event {i}" for i in ids], pa.string()),
            "updated_at": pa.array([f"2024-03-{day:02d} 12:00:00"] * len(ids), pa.string()).cast(pa.timestamp("us")),
        })

    create_table(seed, rows([], 1).schema)
    write_rows(seed, pa.concat_tables([rows([1, 2], 1), rows([3], 2)]))
    warehouse = tmp_path / "warehouse.duckdb"
    source = {**seed, "incremental": {"strategy": "cursor", "cursor_column": "updated_at", "primary_key": ["id"]}}
    destination = {"type": "duckdb", "database": str(warehouse), "table": "dw.events", "write_mode": "append"}
    recipe = _recipe(tmp_path / "incremental.yaml", "snowflake_to_duckdb", source, destination)
    first = _run(recipe, "--state-dir", str(tmp_path / "state"))
    assert first.exit_code == 0, first.output
    # A row tied with the high-water mark, and a newer one.
    write_rows(seed, pa.concat_tables([rows([4], 2), rows([5], 3)]))
    second = _run(recipe, "--state-dir", str(tmp_path / "state"))
    assert second.exit_code == 0, second.output
    third = _run(recipe, "--state-dir", str(tmp_path / "state"))
    assert third.exit_code == 0, third.output
    with duckdb.connect(str(warehouse), read_only=True) as db:
        got = db.execute("SELECT id, payload, updated_at FROM dw.events ORDER BY id").fetchall()
    assert [r[0] for r in got] == [1, 2, 3, 4, 5]
    assert got[4][1] == "event 5" and str(got[4][2]) == "2024-03-03 12:00:00"


def test_failed_run_leaves_target_and_commit_record_unchanged(sf, section, unique, tmp_path):
    table = unique("accounts")
    csv = _csv(tmp_path / "accounts.csv", ["1,Ada,10.50,2024-01-01 00:00:00"])
    recipe = _merge_recipe(tmp_path, section, table, csv)
    assert _run(recipe, "--state-dir", str(tmp_path / "state")).exit_code == 0
    before = query(sf, f'SELECT * FROM "{table.upper()}" ORDER BY "id"')
    record = query(sf, 'SELECT run_id, state FROM "_dataloader_state" WHERE recipe_name = ?', ("csv_to_snowflake",))
    # Row 3 of the new file does not cast: the run fails after rows were staged.
    _csv(csv, ["1,changed,1.00,2024-02-01 00:00:00", "2,new,2.00,2024-02-01 00:00:00", "x3,bad,3.00,2024-02-01 00:00:00"])
    failed = CliRunner().invoke(cli, ["run", recipe, "--state-dir", str(tmp_path / "state")])
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output
    assert query(sf, f'SELECT * FROM "{table.upper()}" ORDER BY "id"') == before
    assert query(sf, 'SELECT run_id, state FROM "_dataloader_state" WHERE recipe_name = ?', ("csv_to_snowflake",)) == record


def test_list_connectors_shows_snowflake_with_its_modes():
    result = CliRunner().invoke(cli, ["list-connectors", "--json"], catch_exceptions=False)
    listed = {item["name"]: item for item in json.loads(result.output)}
    assert listed["snowflake"]["distribution"] == "dataloader-connector-snowflake"
    assert sorted(listed["snowflake"]["write_modes"]) == ["append", "merge", "overwrite"]


def test_render_masks_every_secret_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SF_PASSWORD", "pw-visible-1")
    monkeypatch.setenv("SF_PASSPHRASE", "pp-visible-2")
    source = {"type": "filestore", "path": "x.csv", "format": "csv"}
    destination = {
        "type": "snowflake", "account": "acme-xy", "user": "loader", "table": "t",
        "private_key": "-----BEGIN PRIVATE KEY-----inline-visible-3", "private_key_passphrase": "{{ env_var('SF_PASSPHRASE') }}",
    }
    recipe = _recipe(tmp_path / "r.yaml", "masked", source, destination)
    result = CliRunner().invoke(cli, ["render", recipe], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for secret in ("pp-visible-2", "inline-visible-3"):
        assert secret not in result.output
    destination = {**destination, "password": "{{ env_var('SF_PASSWORD') }}"}
    del destination["private_key"], destination["private_key_passphrase"]
    recipe = _recipe(tmp_path / "r2.yaml", "masked", source, destination)
    result = CliRunner().invoke(cli, ["render", recipe], catch_exceptions=False)
    assert "pw-visible-1" not in result.output
