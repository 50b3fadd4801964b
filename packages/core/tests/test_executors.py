"""The executor seam: a plugin registers an executor, a recipe selects it, rows go through the one protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from dataloader.cli import cli
from dataloader.config import ConfigModel
from dataloader.engine import run_recipe
from dataloader.errors import RecipeError
from dataloader.hookspecs import hookimpl
from dataloader.plugins import use_host
from dataloader.recipe import Recipe
from dataloader.run.executors import Job
from dataloader.state import LocalStateBackend
from dataloader.testing import MEMORY_RECORDS, MEMORY_TABLES, plugin_host


class BatchesBackwardsConfig(ConfigModel):
    label: str = "toy"


class BatchesBackwards:
    """A toy executor: processes every partition first, then writes the batches in reverse order."""

    used: list[str] = []

    def __init__(self, config: BatchesBackwardsConfig) -> None:
        self.config = config

    def run(self, job: Job) -> None:
        BatchesBackwards.used.append(self.config.label)
        ready = [batch for partition in job.partitions() for batch in job.process(partition)]
        for batch in reversed(ready):
            job.write(batch)


class ToyPlugin:
    @hookimpl
    def register_executors(self, register: Any) -> None:
        register("backwards", BatchesBackwards, config=BatchesBackwardsConfig)


@pytest.fixture(autouse=True)
def host() -> Iterator[Any]:
    MEMORY_TABLES.clear()
    BatchesBackwards.used = []
    with use_host(plugin_host(ToyPlugin(), entry_points=False)) as h:
        yield h
    MEMORY_TABLES.clear()


def recipe(runtime: dict[str, Any]) -> Recipe:
    return Recipe.from_dict(
        {
            "name": "toy",
            "source": {"type": "contract_memory", "table": "src", "batch_rows": 2},
            "destination": {"type": "contract_memory", "table": "out"},
            "runtime": {"batch_size": 2, **runtime},
        }
    )


def test_a_plugin_executor_runs_a_recipe_through_the_commit_protocol(tmp_path):
    MEMORY_TABLES["src"] = pa.table({"id": pa.array(range(1, 8), pa.int64())})
    result = run_recipe(recipe({"executor": "backwards", "label": "from-the-test"}), LocalStateBackend(tmp_path), history=False)
    assert BatchesBackwards.used == ["from-the-test"]
    assert result.rows_written == 7
    assert MEMORY_TABLES["out"].column("id").to_pylist() == [7, 5, 6, 3, 4, 1, 2]
    assert MEMORY_RECORDS[("out", "toy")]["run_id"] == result.run_id


def test_the_local_executor_is_the_default():
    assert recipe({}).runtime.executor == "local"


def test_executor_keys_are_checked_by_the_executors_own_model():
    with pytest.raises(RecipeError, match="runtime"):
        recipe({"executor": "backwards", "lable": "typo"})
    with pytest.raises(RecipeError, match="runtime"):
        recipe({"label": "only the backwards executor knows this key"})


def test_an_unknown_executor_names_the_installed_ones():
    with pytest.raises(RecipeError, match="runtime.executor: .*'dask'.*backwards, local"):
        recipe({"executor": "dask"})


def test_list_executors_shows_the_built_in_and_the_plugin():
    result = CliRunner().invoke(cli, ["list-executors", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.output)}
    assert names == {"local", "backwards"}
