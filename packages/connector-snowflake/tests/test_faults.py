"""Fault cases of the commit protocol against the emulator: the reply to COMMIT lost, a failure
inside the transaction, a commit record that survives a lost local state file."""

from __future__ import annotations

import shutil
from typing import Any

import pyarrow as pa
import pytest
from conftest import query
from dataloader import hookimpl
from dataloader.engine import run_recipe
from dataloader.errors import DataLoaderError, TransientConnectorError
from dataloader.plugins import use_host
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend
from dataloader.testing import MEMORY_TABLES, plugin_host
from dataloader_snowflake.capabilities import CAPABILITIES
from dataloader_snowflake.config import SnowflakeConfig
from dataloader_snowflake.connector import SnowflakeConnector


class LostReplyConnector(SnowflakeConnector):
    """Commits for real, then raises as if the network dropped Snowflake's reply to COMMIT."""

    lose_replies = 1

    def commit(self, state: Any) -> None:
        super().commit(state)
        if LostReplyConnector.lose_replies > 0:
            LostReplyConnector.lose_replies -= 1
            raise TransientConnectorError("the reply to COMMIT was lost (injected by the test)")


class FailingMergeConnector(SnowflakeConnector):
    """Fails after the MERGE ran inside the transaction, before the commit record and COMMIT."""

    def _record_table(self) -> Any:
        table = super()._record_table()

        class Broken:
            def __getattr__(self, name: str) -> Any:
                return getattr(table, name)

            def write_statements(self, record: Any) -> list[tuple[str, Any]]:
                return [("SELECT no_such_column FROM no_such_table_for_the_test", None)]

        return Broken()


def _build(cls: type) -> Any:
    def build(config: SnowflakeConfig) -> Any:
        return cls(config)

    build.capabilities = CAPABILITIES  # type: ignore[attr-defined]
    return build


class _Plugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("snowflake_lost_reply", _build(LostReplyConnector), config=SnowflakeConfig)
        register("snowflake_failing_merge", _build(FailingMergeConnector), config=SnowflakeConfig)


@pytest.fixture
def host() -> Any:
    MEMORY_TABLES.clear()
    with use_host(plugin_host(_Plugin())) as h:
        yield h
    MEMORY_TABLES.clear()


def _rows(ids: list[int], updated: int) -> pa.Table:
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "name": pa.array([f"row {i}" for i in ids]),
        "updated": pa.array([updated] * len(ids), pa.int64()),
    })


def _run(tmp_path: Any, destination: dict[str, Any], name: str = "faults", state_dir: str = "state") -> Any:
    recipe = Recipe.from_dict({
        "name": name,
        "source": {"type": "contract_memory", "table": "src", "batch_rows": 2,
                   "incremental": {"strategy": "cursor", "cursor_column": "updated", "primary_key": ["id"]}},
        "destination": destination,
        "runtime": {"batch_size": 2},
    })
    return run_recipe(recipe, LocalStateBackend(tmp_path / state_dir), history=False)


def test_lost_reply_to_commit_does_not_duplicate_rows(host, section, unique, sf, tmp_path):
    table = unique("lost_reply")
    MEMORY_TABLES["src"] = _rows([1, 2, 3, 4, 5], updated=1)
    LostReplyConnector.lose_replies = 1
    destination = section(type="snowflake_lost_reply", table=f'"{table}"', write_mode="append")
    try:
        _run(tmp_path, destination)
    except DataLoaderError:
        pass  # the engine may report the run as failed; what matters is what the table holds
    assert query(sf, f'SELECT COUNT(*) FROM "{table}"') == [(5,)]
    # The next run must know from the commit record that rows 1-5 are in.
    MEMORY_TABLES["src"] = pa.concat_tables([_rows([1, 2, 3, 4, 5], updated=1), _rows([6], updated=2)])
    again = _run(tmp_path, destination)
    assert again.status == "success"
    assert sorted(r[0] for r in query(sf, f'SELECT "id" FROM "{table}"')) == [1, 2, 3, 4, 5, 6]


def test_lost_local_state_is_recovered_from_the_commit_record(host, section, unique, sf, tmp_path):
    table = unique("lost_state")
    MEMORY_TABLES["src"] = _rows([1, 2, 3], updated=1)
    destination = section(table=f'"{table}"', write_mode="append")
    assert _run(tmp_path, destination).rows_written == 3
    shutil.rmtree(tmp_path / "state")
    MEMORY_TABLES["src"] = pa.concat_tables([_rows([1, 2, 3], updated=1), _rows([4], updated=2)])
    _run(tmp_path, destination)
    assert sorted(r[0] for r in query(sf, f'SELECT "id" FROM "{table}"')) == [1, 2, 3, 4]


def test_failure_inside_the_transaction_rolls_back_the_merge(host, section, unique, sf, tmp_path):
    table = unique("rollback")
    MEMORY_TABLES["src"] = _rows([1, 2], updated=1)
    _run(tmp_path, section(table=f'"{table}"', write_mode="merge", merge_keys=["id"]))
    before = query(sf, f'SELECT * FROM "{table}" ORDER BY "id"')
    MEMORY_TABLES["src"] = _rows([1, 2, 3], updated=5)
    broken = section(type="snowflake_failing_merge", table=f'"{table}"', write_mode="merge", merge_keys=["id"])
    with pytest.raises(DataLoaderError, match="commit record"):
        _run(tmp_path, broken, state_dir="state2")
    assert query(sf, f'SELECT * FROM "{table}" ORDER BY "id"') == before
    leftovers = query(sf, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME LIKE ?", (f"{table}__dl_%",))
    assert leftovers == []
