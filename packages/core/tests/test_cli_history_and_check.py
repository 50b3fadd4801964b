"""``dataloader runs`` (the run history) and ``dataloader check`` (preflight), with the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from dataloader.cli import cli
from dataloader.plugins import use_host
from dataloader.testing import MEMORY_TABLES, plugin_host


@pytest.fixture(autouse=True)
def host(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATALOADER_HISTORY", str(tmp_path / "runs.db"))
    MEMORY_TABLES.clear()
    MEMORY_TABLES["src"] = pa.table({"id": [1, 2, 3]})
    with use_host(plugin_host(entry_points=False)):
        yield
    MEMORY_TABLES.clear()


def recipe(path: Path, name: str, table: str) -> Path:
    path.write_text(
        f"name: {name}\nsource: {{type: contract_memory, table: {table}}}\n"
        "destination: {type: contract_memory, table: out, write_mode: append}\n",
        encoding="utf-8",
    )
    return path


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_runs_lists_successes_and_failures_newest_first(tmp_path):
    good = recipe(tmp_path / "good.yaml", "good", "src")
    bad = recipe(tmp_path / "bad.yaml", "bad", "nope")
    assert invoke("run", good).exit_code == 0
    failed = invoke("run", bad)
    assert failed.exit_code == 1 and "does not exist" in failed.output
    listed = invoke("runs", "--json")
    records = json.loads(listed.output)
    assert [(r["recipe"], r["status"]) for r in records] == [("bad", "failed"), ("good", "success")]
    assert records[1]["rows_written"] == 3 and records[1]["state_after"]["metadata"]["rows_written"] == 3
    only_failed = json.loads(invoke("runs", "--json", "--status", "failed").output)
    assert [r["recipe"] for r in only_failed] == ["bad"]
    assert json.loads(invoke("runs", "--json", "--recipe", "good", "--limit", "1").output)[0]["recipe"] == "good"
    table = invoke("runs")
    assert table.exit_code == 0 and "good" in table.output and "failed" in table.output


def test_check_reports_ok_and_problems(tmp_path):
    good = recipe(tmp_path / "good.yaml", "good", "src")
    result = invoke("check", good)
    assert result.exit_code == 0 and "good.yaml: ok" in result.output
    unknown = tmp_path / "typo.yaml"
    unknown.write_text("name: typo\nsource: {type: contract_memry, table: src}\ndestination: {type: contract_memory, table: o}\n")
    result = invoke("check", unknown)
    assert result.exit_code == 1 and "did you mean 'contract_memory'" in result.output
    assert "Traceback" not in result.output
