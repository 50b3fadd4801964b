"""The engine through the Python API: moving rows, state, recovery, retries, checks, history, hooks.

Sources and destinations are the contract kit's ``contract_memory`` connector plus a few small
connectors defined here to observe or break the engine on purpose.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from dataloader import hookimpl
from dataloader.batch import Batch
from dataloader.config import ConnectorConfig
from dataloader.connector import BaseConnector, Capabilities
from dataloader.engine import RunResult, rechunk, run_recipe
from dataloader.errors import ConnectorError, DataLoaderError, StateError, TransformError, TransientConnectorError
from dataloader.history import RunHistory
from dataloader.plugins import use_host
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend, State
from dataloader.testing import MEMORY_TABLES, plugin_host

EVENTS: list[tuple[str, Any]] = []
COMMITTED: dict[str, Any] = {}


class ProbeConfig(ConnectorConfig):
    batches: int = 10
    rows: int = 5
    fail_times: int = 0
    permanent: bool = False
    fail_commit: bool = False


class Probe(BaseConnector):
    """A source that counts what it produced, and a destination that records commits."""

    capabilities = Capabilities(read=True, write=True, write_modes=frozenset({"append", "overwrite"}), transactional=True)
    produced = 0
    written_sizes: list[int] = []
    max_lead = 0
    attempts = 0
    consumed = 0

    def read_batches(self, state: State) -> Iterator[Batch]:
        Probe.attempts += 1
        if Probe.attempts <= self.config.fail_times:
            if self.config.permanent:
                raise ConnectorError("the table is gone")
            raise TransientConnectorError("connection reset by peer")
        for number in range(self.config.batches):
            Probe.produced += 1
            Probe.max_lead = max(Probe.max_lead, Probe.produced - Probe.consumed)
            ids = list(range(number * self.config.rows, (number + 1) * self.config.rows))
            yield Batch.from_arrow(pa.record_batch({"id": pa.array(ids, pa.int64())}))

    def begin(self, schema: Any, mode: str, state: State) -> None:
        self.staged: list[pa.RecordBatch] = []

    def write_batch(self, batch: Batch, state: State) -> None:
        Probe.consumed += 1
        Probe.written_sizes.append(batch.row_count)
        self.staged.append(batch.to_arrow())

    def commit(self, state: State) -> None:
        if self.config.fail_commit:
            raise ConnectorError("commit refused")
        COMMITTED[self.context.recipe_name] = {"run_id": self.context.run_id, "state": state.to_dict()}
        MEMORY_TABLES["probe_out"] = pa.Table.from_batches(self.staged) if self.staged else None

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None:
        return COMMITTED.get(recipe_name)


class Observer:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("probe", Probe, config=ProbeConfig)

    @hookimpl
    def run_started(self, run: Any) -> None:
        EVENTS.append(("run_started", run.run_id))

    @hookimpl
    def batch_written(self, run: Any, batch: Batch, rows: int) -> None:
        EVENTS.append(("batch_written", rows))

    @hookimpl
    def run_finished(self, run: Any, result: Any) -> None:
        EVENTS.append(("run_finished", result.status))


@pytest.fixture(autouse=True)
def host():
    MEMORY_TABLES.clear()
    COMMITTED.clear()
    EVENTS.clear()
    Probe.produced = Probe.consumed = Probe.max_lead = Probe.attempts = 0
    Probe.written_sizes = []
    with use_host(plugin_host(Observer(), entry_points=False)) as h:
        yield h
    MEMORY_TABLES.clear()


@pytest.fixture
def backend(tmp_path: Path) -> LocalStateBackend:
    return LocalStateBackend(tmp_path / "state")


def recipe(**sections: Any) -> Recipe:
    data = {"name": "job", "source": {"type": "contract_memory", "table": "src"}, "destination": {"type": "contract_memory", "table": "out"}}
    data.update(sections)
    return Recipe.from_dict(data)


def customers(ids: list[int], updated: list[int] | None = None, **extra: list[Any]) -> pa.Table:
    columns: dict[str, Any] = {"id": pa.array(ids, pa.int64()), "updated": pa.array(updated or [0] * len(ids), pa.int64())}
    columns.update(extra)
    return pa.table(columns)


def run(r: Recipe, backend: LocalStateBackend, **kwargs: Any) -> RunResult:
    return run_recipe(r, backend, history=False, **kwargs)


# -- moving rows -------------------------------------------------------------------------------
def test_rows_pass_through_steps_in_order(backend):
    MEMORY_TABLES["src"] = customers([1, 2, 3], fname=pa.array(["a", "b", "c"]), age=pa.array(["10", "20", "30"]))
    steps = [
        {"type": "rename_columns", "mapping": {"fname": "first_name"}},
        {"type": "cast", "columns": {"age": "int"}},
        {"type": "add_column", "name": "origin", "value": "{{ recipe.name }}"},
        {"type": "drop_columns", "columns": ["updated"]},
        {"type": "select_columns", "columns": ["origin", "id", "first_name", "age"]},
    ]
    result = run(recipe(transform={"steps": steps}), backend)
    out = MEMORY_TABLES["out"]
    assert result.status == "success" and result.rows_read == 3 and result.rows_written == 3
    assert out.column_names == ["origin", "id", "first_name", "age"]
    assert out.column("age").type == pa.int64() and out.column("age").to_pylist() == [10, 20, 30]
    assert out.column("origin").to_pylist() == ["job"] * 3


def test_batch_size_rechunks_what_the_destination_gets(backend):
    result = run(recipe(source={"type": "probe", "batches": 7, "rows": 3}, destination={"type": "probe"}, runtime={"batch_size": 4}), backend)
    assert result.rows_written == 21
    assert Probe.written_sizes == [4, 4, 4, 4, 4, 1]


def test_rechunk_joins_small_batches_and_slices_big_ones():
    small = [Batch.from_arrow(pa.record_batch({"x": [i]})) for i in range(5)]
    big = [Batch.from_arrow(pa.record_batch({"x": list(range(10))}))]
    assert [b.row_count for b in rechunk(iter(small), 2)] == [2, 2, 1]
    assert [b.row_count for b in rechunk(iter(big), 4)] == [4, 4, 2]


def test_rechunk_joins_small_batches_without_copying_them():
    pieces = [pa.record_batch({"x": list(range(i * 3, i * 3 + 3)), "s": [f"v{i}"] * 3}) for i in range(4)]
    joined = list(rechunk(iter(Batch.from_arrow(p, {"file": "a.csv"}) for p in pieces), 12))
    assert len(joined) == 1 and joined[0].row_count == 12 and joined[0].metadata == {"file": "a.csv"}
    chunks = joined[0].to_arrow_chunks()
    assert len(chunks) == 4
    # The same buffers as the source's batches: nothing was copied on the way.
    assert [c.column("x").buffers()[1].address for c in chunks] == [p.column("x").buffers()[1].address for p in pieces]
    one = joined[0].to_arrow()  # a caller that wants one record batch gets the pieces joined, once
    assert isinstance(one, pa.RecordBatch) and one.column("x").to_pylist() == list(range(12))
    assert joined[0].to_arrow() is one and joined[0].to_arrow_chunks() == [one]


def test_a_batch_of_several_pieces_answers_without_joining_them():
    table = pa.Table.from_batches([pa.record_batch({"x": [1, 2]}), pa.record_batch({"x": [3]})])
    batch = Batch.from_arrow(table, {"k": 1})
    assert batch.row_count == len(batch) == 3 and batch.columns == ["x"] and batch.schema == table.schema
    assert [c.num_rows for c in batch.to_arrow_chunks()] == [2, 1]
    assert batch.rows == [[1], [2], [3]]
    assert batch.to_arrow().column("x").to_pylist() == [1, 2, 3]
    empty = Batch.from_arrow(pa.Table.from_batches([], schema=table.schema))
    assert empty.row_count == 0 and isinstance(empty.to_arrow(), pa.RecordBatch)


def test_reader_stays_a_bounded_number_of_batches_ahead(backend):
    """The queue bounds memory: however long the source, the reader never runs far ahead."""
    run(recipe(source={"type": "probe", "batches": 200, "rows": 1}, destination={"type": "probe"}, runtime={"batch_size": 1, "queue_size": 2}), backend)
    assert Probe.consumed == 200
    assert Probe.max_lead <= 2 + 3  # queue slots, one in the reader's hand, one being written, one re-chunked


def test_empty_source_commits_nothing_and_succeeds(backend):
    MEMORY_TABLES["src"] = customers([])
    result = run(recipe(destination={"type": "contract_memory", "table": "out", "write_mode": "overwrite"}), backend)
    assert result.status == "success" and result.rows_written == 0


# -- state and incremental ---------------------------------------------------------------------
def incremental_recipe() -> Recipe:
    return recipe(source={"type": "contract_memory", "table": "src", "incremental": {"cursor_column": "updated", "primary_key": ["id"]}})


def test_incremental_loads_ties_and_late_rows_exactly_once(backend):
    MEMORY_TABLES["src"] = customers([1, 2, 3], [1, 2, 2])
    assert run(incremental_recipe(), backend).rows_written == 3
    state = State.from_dict(backend.load("job"))
    assert state.cursor_value("updated") == 2 and state.boundary_keys("updated") == {"2", "3"}
    # a row committed late with the old high-water value, and a newer one
    MEMORY_TABLES["src"] = customers([1, 2, 3, 4, 5], [1, 2, 2, 2, 3])
    assert run(incremental_recipe(), backend).rows_written == 2
    assert run(incremental_recipe(), backend).rows_written == 0
    assert sorted(MEMORY_TABLES["out"].column("id").to_pylist()) == [1, 2, 3, 4, 5]


def test_full_refresh_ignores_the_cursor(backend):
    MEMORY_TABLES["src"] = customers([1, 2], [1, 2])
    run(incremental_recipe(), backend)
    assert run(incremental_recipe(), backend, full_refresh=True).rows_written == 2


def test_failed_commit_leaves_state_and_destination_as_they_were(backend):
    backend.save("job", State(metadata={"note": "before"}).to_dict())
    with pytest.raises(ConnectorError, match="commit refused"):
        run(recipe(source={"type": "probe"}, destination={"type": "probe", "fail_commit": True}), backend)
    assert backend.load("job")["metadata"] == {"note": "before"}
    assert backend.load("job")["checkpoints"] == {}
    assert "probe_out" not in MEMORY_TABLES


def test_failed_source_aborts_and_the_error_carries_the_result(backend):
    MEMORY_TABLES["out"] = customers([9])
    MEMORY_TABLES["src"] = customers(list(range(10)))
    bad = recipe(source={"type": "contract_memory", "table": "src", "fail_after_batches": 1}, destination={"type": "contract_memory", "table": "out", "write_mode": "overwrite"})
    with pytest.raises(DataLoaderError) as caught:
        run(bad, backend)
    assert caught.value.context["result"].status == "failed"
    assert MEMORY_TABLES["out"].column("id").to_pylist() == [9]


def test_crash_after_commit_is_recovered_from_the_destination(backend):
    """The run committed, then died before saving state: the next run adopts the committed state."""
    r = recipe(source={"type": "probe", "batches": 1}, destination={"type": "probe"})
    COMMITTED["job"] = {"run_id": "dead-run", "state": State(cursor_values={"updated": 7}, watermarks={"updated": {"kind": "int", "boundary_keys": []}}).to_dict()}
    backend.save("job", State(checkpoints={"run_id": "dead-run"}).to_dict())
    events: list[Any] = []
    run(r, backend, on_event=events.append)
    assert any("committed before it was interrupted" in (e.message or "") for e in events)
    assert backend.load("job")["cursor_values"] == {"updated": 7}


def test_crash_before_commit_restarts_cleanly(backend):
    MEMORY_TABLES["src"] = customers([1, 2], [1, 1])
    backend.save("job", State(checkpoints={"run_id": "dead-run"}).to_dict())
    events: list[Any] = []
    result = run(incremental_recipe(), backend, resume=True, on_event=events.append)
    assert result.rows_written == 2
    assert any("before it committed" in (e.message or "") for e in events)


def test_unwritable_state_dir_fails_before_touching_the_destination(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    MEMORY_TABLES["src"] = customers([1])
    with pytest.raises(StateError):
        run(recipe(), LocalStateBackend(blocked))
    assert "out" not in MEMORY_TABLES


# -- retries -----------------------------------------------------------------------------------
def test_transient_failures_are_retried(backend):
    r = recipe(source={"type": "probe", "batches": 2, "fail_times": 2}, destination={"type": "probe"}, runtime={"retries": {"max_attempts": 3, "initial_delay": 0, "max_delay": 0}})
    result = run(r, backend)
    assert result.status == "success" and result.attempts == 3 and result.rows_written == 10


def test_permanent_failures_are_not_retried(backend):
    r = recipe(source={"type": "probe", "fail_times": 1, "permanent": True}, destination={"type": "probe"}, runtime={"retries": {"max_attempts": 5, "initial_delay": 0}})
    with pytest.raises(ConnectorError, match="the table is gone"):
        run(r, backend)
    assert Probe.attempts == 1


# -- transforms, checks and the dead-letter file -----------------------------------------------
def test_cast_error_names_step_column_row_and_value(backend):
    MEMORY_TABLES["src"] = customers([1, 2, 3], age=pa.array(["1", "2", "x3"]))
    r = recipe(transform={"steps": [{"type": "rename_columns", "mapping": {"id": "key"}}, {"type": "cast", "columns": {"age": "int"}}]})
    with pytest.raises(TransformError) as caught:
        run(r, backend)
    message = str(caught.value)
    assert "transform.steps.1 (cast)" in message and "'age'" in message and "row 3" in message and "'x3'" in message
    assert "out" not in MEMORY_TABLES


@pytest.mark.parametrize(
    ("type_name", "values", "expected"),
    [
        ("bool", ["yes", "No", "TRUE", "0", None], [True, False, True, False, None]),
        ("decimal(6,2)", ["1.50", " -2 ", "", None, "1234.5"], ["1.50", "-2.00", None, None, "1234.50"]),
        ("date", ["2024-02-29", None, "1999-12-31", "", "2000-01-01"], ["2024-02-29", None, "1999-12-31", None, "2000-01-01"]),
        ("datetime", ["2024-01-02 03:04:05", None, "2024-01-02T03:04:05.5", "", "1970-01-01"], ["2024-01-02 03:04:05", None, "2024-01-02 03:04:05.500000", None, "1970-01-01 00:00:00"]),
        ("float", ["1.5", "-2", "", None, "1e3"], [1.5, -2.0, None, None, 1000.0]),
        ("str", ["a", None, "b", "", "c"], ["a", None, "b", "", "c"]),
    ],
)
def test_cast_understands_text(type_name, values, expected, backend):
    MEMORY_TABLES["src"] = customers([1, 2, 3, 4, 5], v=pa.array(values, pa.string()))
    run(recipe(transform={"steps": [{"type": "cast", "columns": {"v": type_name}}]}), backend)
    got = MEMORY_TABLES["out"].column("v").to_pylist()
    assert [None if g is None else (str(g) if not isinstance(g, (bool, float)) else g) for g in got] == expected


def test_cast_to_dlq_keeps_good_rows_and_records_bad_ones(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    MEMORY_TABLES["src"] = customers([1, 2, 3, 4], age=pa.array(["1", "two", "3", "four"]))
    result = run(recipe(transform={"steps": [{"type": "cast", "columns": {"age": "int"}, "on_error": "dlq"}]}), backend)
    assert result.status == "partial_success" and result.rows_failed == 2 and result.rows_written == 2
    assert MEMORY_TABLES["out"].column("age").to_pylist() == [1, 3]
    lines = [json.loads(line) for line in Path(result.dead_letter_path).read_text().splitlines()]
    assert [line["row"] for line in lines] == [2, 4]
    assert lines[0]["record"]["age"] == "two" and "not a valid int64" in lines[0]["error"] and lines[0]["timestamp"]
    assert result.dead_letter_path == f"errors/job/{result.run_id}.jsonl"


def test_quality_checks_fail_warn_and_dlq(backend, tmp_path):
    MEMORY_TABLES["src"] = customers([1, 2, 3, 3], email=pa.array(["a@x.io", "bad", None, "c@x.io"]), age=pa.array([5, 200, 30, 40]))
    checks = [
        {"column": "email", "check": "regex", "pattern": "^[^@]+@[^@]+$", "action": "dlq"},
        {"column": "age", "check": "range", "min": 0, "max": 150, "action": "warn"},
        {"column": "status", "check": "enum", "values": ["a"], "action": "warn"},
    ]
    with pytest.raises(DataLoaderError, match="column 'status' is not in the data"):
        run(recipe(quality_checks=checks, runtime={"dead_letter_path": str(tmp_path / "dlq/{run_id}.jsonl")}), backend)
    events: list[Any] = []
    result = run(recipe(quality_checks=checks[:2], runtime={"dead_letter_path": str(tmp_path / "dlq/{run_id}.jsonl")}), backend, on_event=events.append)
    assert result.rows_failed == 1 and MEMORY_TABLES["out"].column("id").to_pylist() == [1, 3, 3]
    assert any("range on 'age' failed for 1 row(s); first at row 2" in (e.message or "") for e in events)
    unique = [{"column": "id", "check": "unique", "action": "fail"}]
    with pytest.raises(DataLoaderError, match="unique on 'id' failed for 1 row"):
        run(recipe(quality_checks=unique), backend)


def test_unique_holds_across_batches(backend, tmp_path):
    MEMORY_TABLES["src"] = customers([1, 2, 3, 1, 5, 2])
    r = recipe(quality_checks=[{"column": "id", "check": "unique", "action": "dlq"}], runtime={"batch_size": 2, "dead_letter_path": str(tmp_path / "d.jsonl")})
    result = run(r, backend)
    assert result.rows_failed == 2 and MEMORY_TABLES["out"].column("id").to_pylist() == [1, 2, 3, 5]


def test_too_many_failed_rows_roll_the_run_back(backend, tmp_path):
    MEMORY_TABLES["out"] = customers([100])
    MEMORY_TABLES["src"] = customers([1, 2, 3], email=pa.array([None, None, "x"]))
    r = recipe(
        quality_checks=[{"column": "email", "check": "not_null", "action": "dlq"}],
        runtime={"max_failed_rows": 1, "dead_letter_path": str(tmp_path / "d.jsonl")},
        destination={"type": "contract_memory", "table": "out", "write_mode": "overwrite"},
    )
    with pytest.raises(DataLoaderError, match="max_failed_rows=1"):
        run(r, backend)
    assert MEMORY_TABLES["out"].column("id").to_pylist() == [100]


# -- history and hooks -------------------------------------------------------------------------
def test_every_run_is_recorded_in_the_history(backend, tmp_path):
    history = RunHistory(tmp_path / "runs.db")
    MEMORY_TABLES["src"] = customers([1, 2])
    run_recipe(recipe(), backend, history=history)
    with pytest.raises(DataLoaderError):
        run_recipe(recipe(source={"type": "contract_memory", "table": "missing"}), backend, history=history)
    records = history.list()
    assert [r["status"] for r in records] == ["failed", "success"]
    assert records[1]["rows_written"] == 2 and "does not exist" in records[0]["error"]
    assert history.list(status="failed", recipe="job", limit=5)[0]["run_id"] == records[0]["run_id"]


def test_lifecycle_hooks_see_the_run(backend):
    run(recipe(source={"type": "probe", "batches": 2}, destination={"type": "probe"}, runtime={"batch_size": 5}), backend)
    kinds = [kind for kind, _ in EVENTS]
    assert kinds == ["run_started", "batch_written", "batch_written", "run_finished"]
    assert EVENTS[-1] == ("run_finished", "success")


def test_parallel_recipes_do_not_share_state(tmp_path):
    from dataloader.engine import run_many

    MEMORY_TABLES["src"] = customers([1, 2, 3])
    recipes = [Recipe.from_dict({"name": f"job{i}", "source": {"type": "contract_memory", "table": "src"}, "destination": {"type": "contract_memory", "table": f"out{i}"}}) for i in range(4)]
    seen_threads: set[str] = set()
    results = run_many(recipes, lambda r: LocalStateBackend(tmp_path / "s"), jobs=2, history=False, on_event=lambda e: seen_threads.add(threading.current_thread().name))
    assert all(isinstance(r, RunResult) and r.rows_written == 3 for r in results)
    assert len(seen_threads) == 2


# -- checkpoints -------------------------------------------------------------------------------
def checkpointed(fail_after: int | None, every: int = 1) -> Recipe:
    source = {"type": "contract_memory", "table": "src", "batch_rows": 3}
    if fail_after is not None:
        source["fail_after_batches"] = fail_after
    return recipe(source=source, runtime={"batch_size": 3, "checkpoint_every": every})


def test_checkpoints_publish_progress_and_a_rerun_resumes_after_them(backend):
    MEMORY_TABLES["src"] = customers(list(range(1, 11)))
    with pytest.raises(DataLoaderError, match="failed on purpose"):
        run(checkpointed(fail_after=3), backend)
    assert MEMORY_TABLES["out"].column("id").to_pylist() == list(range(1, 10))
    assert backend.load("job")["checkpoints"]["rows_done"] == 9
    events: list[Any] = []
    result = run(checkpointed(fail_after=None), backend, resume=True, on_event=events.append)
    assert result.rows_written == 1
    assert MEMORY_TABLES["out"].column("id").to_pylist() == list(range(1, 11))
    assert backend.load("job")["checkpoints"] == {}
    assert any("after its last checkpoint (9 source rows loaded)" in (e.message or "") for e in events)


def test_checkpoints_keep_the_cursor_exact_across_a_resume(backend):
    MEMORY_TABLES["src"] = customers(list(range(1, 11)), [i // 4 for i in range(1, 11)])
    source = {"type": "contract_memory", "table": "src", "batch_rows": 3, "fail_after_batches": 2, "incremental": {"cursor_column": "updated", "primary_key": ["id"]}}
    with pytest.raises(DataLoaderError):
        run(recipe(source=source, runtime={"batch_size": 3, "checkpoint_every": 1}), backend)
    del source["fail_after_batches"]
    run(recipe(source=source, runtime={"batch_size": 3, "checkpoint_every": 1}), backend)
    state = State.from_dict(backend.load("job"))
    assert state.cursor_value("updated") == 2 and state.boundary_keys("updated") == {"8", "9", "10"}
    assert sorted(MEMORY_TABLES["out"].column("id").to_pylist()) == list(range(1, 11))


def test_checkpoint_every_refuses_overwrite():
    from dataloader.errors import RecipeError

    with pytest.raises(RecipeError, match="runtime.checkpoint_every: an overwrite publishes all rows at once"):
        recipe(destination={"type": "contract_memory", "table": "out", "write_mode": "overwrite"}, runtime={"checkpoint_every": 2})
