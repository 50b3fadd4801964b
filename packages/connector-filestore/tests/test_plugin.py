"""The entry-point module imports cheaply, and registers the connector and four formats."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dataloader.connector import Capabilities

HEAVY = ("fsspec", "charset_normalizer", "zstandard", "pyarrow.csv", "pyarrow.json", "pyarrow.parquet")


def test_importing_the_plugin_loads_no_driver() -> None:
    code = (
        "import sys, dataloader_filestore.plugin\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_registers_filestore_and_the_formats(host) -> None:
    registry = host.registry
    assert registry.names("format") == ["csv", "json", "jsonl", "parquet"]
    connector = registry.get("connector", "filestore")
    assert connector.distribution == "dataloader-connector-filestore"
    caps = connector.factory.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.write_modes == frozenset({"append", "overwrite"})
    assert caps.incremental_strategies == frozenset({"modified_time"})


def test_unknown_format_is_reported_with_the_installed_ones(host) -> None:
    from dataloader_filestore.config import FilestoreConfig

    with pytest.raises(ValueError, match=r"unknown format 'xlsx'.*installed: csv, json, jsonl, parquet"):
        FilestoreConfig.model_validate({"type": "filestore", "path": "a.xlsx", "format": "xlsx"})


def test_a_third_party_format_is_used_by_name(host, tmp_path) -> None:
    """A format registered by another plugin reads files like the built-in ones."""
    import pyarrow as pa
    from dataloader.hookspecs import hookimpl
    from dataloader.state import State
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    class WordsFormat:
        extensions = (".words",)

        def __init__(self, options) -> None:
            self.options = options

        def read(self, stream, *, path, batch_size):
            words = stream.read().decode("utf-8").split()
            yield pa.record_batch({"word": pa.array(words)})

        def writer(self, stream, schema):  # pragma: no cover - not used here
            raise NotImplementedError

    class WordsPlugin:
        @hookimpl
        def register_formats(self, register):
            register("words", WordsFormat)

    host.register(WordsPlugin(), name="words", distribution="tests")
    (tmp_path / "a.words").write_text("hello brave new world", encoding="utf-8")
    connector = FilestoreConnector(
        FilestoreConfig.model_validate({"type": "filestore", "path": str(tmp_path), "format": "words"})
    )
    connector.open()
    rows = [r for b in connector.read_batches(State()) for r in b.to_arrow().column("word").to_pylist()]
    assert rows == ["hello", "brave", "new", "world"]


def test_network_failures_and_throttling_are_transient_and_the_rest_are_not() -> None:
    from dataloader.errors import TransientConnectorError
    from dataloader_filestore.filesystems import io_error

    class ClientError(Exception):
        def __init__(self, code: str) -> None:
            super().__init__(code)
            self.response = {"Error": {"Code": code}}

    assert isinstance(io_error(ConnectionResetError("reset"), "x"), TransientConnectorError)
    assert isinstance(io_error(ClientError("SlowDown"), "x"), TransientConnectorError)
    assert not isinstance(io_error(ClientError("AccessDenied"), "x"), TransientConnectorError)
    assert not isinstance(io_error(ValueError("bad data"), "x"), TransientConnectorError)


def test_check_finds_a_csv_column_that_does_not_fit_the_duckdb_table(tmp_path) -> None:
    """Preflight: the source's columns (from its first file) against an existing table."""
    import duckdb
    from dataloader.engine import preflight
    from dataloader.recipe import Recipe

    (tmp_path / "in.csv").write_text("id,amount\n1,lots\n", encoding="utf-8")
    database = tmp_path / "w.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("create table t (id bigint, amount double)")
    recipe = Recipe.from_dict(
        {
            "name": "check_fit",
            "source": {"type": "filestore", "path": str(tmp_path / "in.csv"), "format": "csv"},
            "destination": {"type": "duckdb", "database": str(database), "table": "t"},
        }
    )
    problems = preflight(recipe)
    assert problems and "amount" in problems[0]


def test_dead_letter_file_can_live_on_any_fsspec_file_system(tmp_path) -> None:
    """runtime.dead_letter_path takes a URL; rejected rows land there (here fsspec's memory://)."""
    import json

    import fsspec
    from dataloader.engine import run_recipe
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    (tmp_path / "in.csv").write_text("id,age\n1,10\n2,old\n3,30\n", encoding="utf-8")
    recipe = Recipe.from_dict(
        {
            "name": "dlq_remote",
            "source": {"type": "filestore", "path": str(tmp_path / "in.csv"), "format": "csv"},
            "transform": {"steps": [{"type": "cast", "columns": {"age": "int"}, "on_error": "dlq"}]},
            "destination": {"type": "filestore", "path": str(tmp_path / "out"), "format": "parquet"},
            "runtime": {"dead_letter_path": "memory://dlq/{recipe}/{run_id}.jsonl"},
        }
    )
    result = run_recipe(recipe, LocalStateBackend(tmp_path / "state"), history=False)
    assert result.status == "partial_success" and result.rows_written == 2
    with fsspec.open(result.dead_letter_path, "r") as handle:
        lines = [json.loads(line) for line in handle]
    assert [(line["row"], line["record"]["age"]) for line in lines] == [(2, "old")]
