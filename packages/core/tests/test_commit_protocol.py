"""The commit protocol as the engine drives it: truth from the destination, leases, limits, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from dataloader import faults
from dataloader.batch import Batch
from dataloader.config import ConnectorConfig
from dataloader.connector import BaseConnector, Capabilities
from dataloader.engine import RunResult, run_recipe
from dataloader.errors import EngineError, LeaseHeldError, RecipeError, TransientConnectorError
from dataloader.hookspecs import hookimpl
from dataloader.plugins import use_host
from dataloader.recipe import Recipe
from dataloader.run.ledger import CommitRecord, LeaseHolder
from dataloader.state import LocalStateBackend, State
from dataloader.testing import MEMORY_RECORDS, MEMORY_TABLES, plugin_host

GATE = threading.Event()
ENTERED = threading.Event()


class GateConfig(ConnectorConfig):
    rows: int = 4


class GatedSource(BaseConnector):
    """A source that stops after its first batch until the test opens the gate."""

    capabilities = Capabilities(read=True)

    def read_batches(self, state: State) -> Iterator[Batch]:
        yield Batch.from_arrow(pa.record_batch({"id": pa.array([1, 2], pa.int64())}))
        ENTERED.set()
        GATE.wait(30)
        yield Batch.from_arrow(pa.record_batch({"id": pa.array([3, 4], pa.int64())}))


class NoRecordDestination(BaseConnector):
    capabilities = Capabilities(write=True, write_modes=frozenset({"append"}), transactional=True)

    def write_batch(self, batch: Batch, state: State) -> None:
        pass


class Plugin:
    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register("gated", GatedSource, config=GateConfig)
        register("no_record", NoRecordDestination, config=ConnectorConfig)


@pytest.fixture(autouse=True)
def host() -> Iterator[Any]:
    MEMORY_TABLES.clear()
    GATE.clear()
    ENTERED.clear()
    with use_host(plugin_host(Plugin(), entry_points=False)) as h:
        yield h
    GATE.set()
    MEMORY_TABLES.clear()


@pytest.fixture
def backend(tmp_path: Path) -> LocalStateBackend:
    return LocalStateBackend(tmp_path / "state")


def recipe(**sections: Any) -> Recipe:
    data: dict[str, Any] = {
        "name": "job",
        "source": {"type": "contract_memory", "table": "src", "incremental": {"cursor_column": "updated", "primary_key": ["id"]}},
        "destination": {"type": "contract_memory", "table": "out"},
    }
    data.update(sections)
    return Recipe.from_dict(data)


def rows(ids: list[int], updated: list[int] | None = None) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "updated": pa.array(updated or [1] * len(ids), pa.int64())})


def run(r: Recipe, backend: LocalStateBackend, **kwargs: Any) -> RunResult:
    return run_recipe(r, backend, history=False, **kwargs)


def out_ids() -> list[int]:
    table = MEMORY_TABLES.get("out")
    return [] if table is None else sorted(table.column("id").to_pylist())


# -- the destination is the truth ----------------------------------------------------------------
def test_a_lost_state_file_does_not_reload_what_the_destination_committed(backend, tmp_path):
    MEMORY_TABLES["src"] = rows([1, 2, 3])
    assert run(recipe(), backend).rows_written == 3
    shutil.rmtree(tmp_path / "state")
    events: list[Any] = []
    again = run(recipe(), backend, on_event=events.append)
    assert again.rows_written == 0 and out_ids() == [1, 2, 3]
    assert any("using the state the destination committed" in (e.message or "") for e in events)
    # ...and the local copy is the destination's again.
    assert backend.load("job")["cursor_values"] == {"updated": 1}


def test_a_stale_state_file_is_overruled_by_the_destination(backend):
    MEMORY_TABLES["src"] = rows([1, 2])
    run(recipe(), backend)
    stale = backend.load("job")
    MEMORY_TABLES["src"] = rows([1, 2, 3, 4], [1, 1, 2, 2])
    run(recipe(), backend)
    backend.save("job", stale)  # as if another machine had an older copy
    assert run(recipe(), backend).rows_written == 0
    assert out_ids() == [1, 2, 3, 4]


def test_a_commit_whose_reply_is_lost_is_not_retried(backend):
    MEMORY_TABLES["src"] = rows([1, 2, 3])
    events: list[Any] = []
    lost = lambda: TransientConnectorError("server closed the connection unexpectedly")  # noqa: E731
    with faults.inject("commit_reply", lost):
        result = run(recipe(), backend, on_event=events.append)
    assert result.status == "success" and result.attempts == 1 and out_ids() == [1, 2, 3]
    assert any("reply to commit 1 was lost" in (e.message or "") for e in events)
    assert backend.load("job")["cursor_values"] == {"updated": 1}


def test_a_commit_that_failed_before_landing_is_retried_once(backend):
    MEMORY_TABLES["src"] = rows([1, 2, 3])

    class Refuse:
        calls = 0

    def refused() -> BaseException:
        Refuse.calls += 1
        # The record of this commit is not there: roll the table back as a failed COMMIT would.
        MEMORY_TABLES.pop("out", None)
        MEMORY_RECORDS.clear()
        return TransientConnectorError("could not commit: connection reset")

    with faults.inject("commit_reply", refused):
        result = run(recipe(runtime={"retries": {"max_attempts": 2, "initial_delay": 0.01}}), backend)
    assert Refuse.calls == 1 and result.attempts == 2 and out_ids() == [1, 2, 3]


def test_commit_records_say_what_each_commit_published(backend):
    MEMORY_TABLES["src"] = rows(list(range(1, 8)))
    run(recipe(runtime={"batch_size": 2, "checkpoint_every": 4}), backend)
    record = CommitRecord.from_dict(MEMORY_RECORDS[("out", "job")], "job")
    assert record.published["final"] is True and record.published["checkpoint"] == 2
    assert record.published["rows"] == 7 and record.state["checkpoints"] == {}


# -- one run at a time ----------------------------------------------------------------------------
def test_a_second_run_of_a_running_recipe_fails_at_once_naming_the_first(backend, tmp_path):
    gated = recipe(source={"type": "gated"})
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(run(gated, backend)))
    first.start()
    assert ENTERED.wait(10)
    try:
        with pytest.raises(LeaseHeldError) as caught:
            run(gated, backend)
    finally:
        GATE.set()
        first.join(10)
    message = str(caught.value)
    assert "recipe 'job' is already running" in message and f"pid {os.getpid()}" in message
    assert results[0].status == "success" and out_ids() == [1, 2, 3, 4]
    # The refused run changed nothing: the state is the first run's.
    assert backend.load("job")["metadata"]["rows_written"] == 4


def test_the_lease_of_a_finished_run_is_free_again(backend):
    MEMORY_TABLES["src"] = rows([1])
    run(recipe(), backend)
    lease = backend.acquire_lease("job", LeaseHolder.current("next"), 10)
    lease.release()


def test_a_dead_runs_lease_is_taken_over(tmp_path):
    backend = LocalStateBackend(tmp_path / "state")
    code = (
        "import os, sys; from dataloader.state import LocalStateBackend; from dataloader.run.ledger import LeaseHolder;"
        f"LocalStateBackend({str(tmp_path / 'state')!r}).acquire_lease('job', LeaseHolder.current('dead'), 60);"
        "os.kill(os.getpid(), 9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    MEMORY_TABLES["src"] = rows([1, 2])
    assert run(recipe(), backend).rows_written == 2


# -- knobs with one meaning -----------------------------------------------------------------------
def test_checkpoint_every_counts_source_rows(backend):
    MEMORY_TABLES["src"] = rows(list(range(1, 11)))
    events: list[Any] = []
    run(recipe(runtime={"batch_size": 2, "checkpoint_every": 5}), backend, on_event=events.append)
    checkpoints = [e.message for e in events if e.kind == "committed" and e.message]
    assert checkpoints == ["checkpoint: 6 source rows loaded"]


def test_checkpointing_into_a_destination_without_commit_records_is_refused_at_validate():
    with pytest.raises(RecipeError, match="runtime.checkpoint_every: destination 'no_record' cannot store its commit state"):
        recipe(destination={"type": "no_record"}, runtime={"checkpoint_every": 100})


def test_max_failed_ratio_is_judged_on_the_whole_run(backend, tmp_path):
    # The first batch is all bad (100 %), the run as a whole 25 %: under a 30 % limit it succeeds.
    ids = [None, None, 3, 4, 5, 6, 7, 8]
    MEMORY_TABLES["src"] = pa.table({"id": pa.array(ids, pa.int64())})
    checks = [{"column": "id", "check": "not_null", "action": "dlq"}]
    r = recipe(
        source={"type": "contract_memory", "table": "src", "batch_rows": 2},
        quality_checks=checks,
        runtime={"batch_size": 2, "max_failed_ratio": 0.3, "dead_letter_path": str(tmp_path / "dlq.jsonl")},
    )
    result = run(r, backend)
    assert result.status == "partial_success" and result.rows_failed == 2 and out_ids() == [3, 4, 5, 6, 7, 8]
    MEMORY_TABLES["src"] = pa.table({"id": pa.array([None, None, None, 4], pa.int64())})
    with pytest.raises(EngineError, match=r"3 of 4 rows failed \(75.0%\), more than runtime.max_failed_ratio=0.3"):
        run(r, LocalStateBackend(tmp_path / "other"))


# -- bounded state --------------------------------------------------------------------------------
def test_many_ties_without_a_primary_key_are_refused_naming_primary_key(backend):
    MEMORY_TABLES["src"] = pa.table({"v": pa.array(range(20_001), pa.int64()), "updated": pa.array([5] * 20_001, pa.int64())})
    tied = recipe(source={"type": "contract_memory", "table": "src", "batch_rows": 5000, "incremental": {"cursor_column": "updated"}})
    with pytest.raises(EngineError, match="share the cursor value 5 of 'updated'.*set primary_key"):
        run(tied, backend)
    assert "out" not in MEMORY_TABLES


def test_state_stays_small_with_many_ties_on_a_key(backend, tmp_path):
    n = 200_000
    MEMORY_TABLES["src"] = pa.table({"id": pa.array(range(n), pa.int64()), "updated": pa.array([5] * n, pa.int64())})
    r = recipe(source={"type": "contract_memory", "table": "src", "batch_rows": 50_000, "incremental": {"cursor_column": "updated", "primary_key": ["id"]}}, runtime={"batch_size": 50_000})
    assert run(r, backend).rows_written == n
    size = (tmp_path / "state" / "job.json").stat().st_size
    assert size < 64 * 1024, size  # whole-number keys are stored as compressed deltas
    # ...and the packed keys still drop exactly the rows already loaded.
    MEMORY_TABLES["src"] = pa.table({"id": pa.array(range(n + 3), pa.int64()), "updated": pa.array([5] * (n + 3), pa.int64())})
    assert run(r, backend).rows_written == 3


def test_ties_without_a_key_are_stored_as_short_digests(backend):
    MEMORY_TABLES["src"] = pa.table({"v": pa.array(["x" * 5000, "y" * 5000]), "updated": pa.array([1, 1], pa.int64())})
    r = recipe(source={"type": "contract_memory", "table": "src", "incremental": {"cursor_column": "updated"}})
    run(r, backend)
    keys = State.from_dict(backend.load("job")).boundary_keys("updated")
    assert len(keys) == 2 and all(len(k) == 20 for k in keys)
    MEMORY_TABLES["src"] = pa.table({"v": pa.array(["x" * 5000, "y" * 5000, "z"]), "updated": pa.array([1, 1, 1], pa.int64())})
    assert run(r, backend).rows_written == 1


def test_legacy_whole_row_keys_still_drop_their_rows(backend):
    state = State()
    state.set_cursor("updated", 1, boundary_keys=["1\x1f1"])
    backend.save("job", state.to_dict())
    MEMORY_TABLES["src"] = rows([1, 2])
    assert run(recipe(source={"type": "contract_memory", "table": "src", "incremental": {"cursor_column": "updated"}}), backend).rows_written == 1


# -- stopped by a signal --------------------------------------------------------------------------
def _slow_recipe(tmp_path: Path) -> Path:
    data = {
        "name": "slow",
        "source": {"type": "contract_memory", "table": "unused", "ipc_path": str(tmp_path / "src.arrow"), "batch_rows": 1},
        "destination": {"type": "contract_memory", "table": "out"},
        "runtime": {"batch_size": 1, "queue_size": 1},
    }
    table = pa.table({"id": pa.array(range(300_000), pa.int64())})
    with pa.OSFile(str(tmp_path / "src.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_run_stopped_by_a_signal_is_recorded_as_interrupted(tmp_path, signum, code):
    recipe_path = _slow_recipe(tmp_path)
    script = (
        "import sys; from dataloader.plugins import use_host; from dataloader.testing import plugin_host;"
        "from dataloader.cli import main;"
        "held = use_host(plugin_host(entry_points=False)); held.__enter__();"
        f"sys.exit(main(['run', {str(recipe_path)!r}, '--state-dir', {str(tmp_path / 'state')!r}]))"
    )
    env = {**os.environ, "DATALOADER_HISTORY": str(tmp_path / "runs.db")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Wait until rows move, then stop it.
        deadline = __import__("time").monotonic() + 60
        while not (tmp_path / "state" / "slow.json").exists() and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.05)
        __import__("time").sleep(0.3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "interrupted by SIG" in err and "Traceback" not in err
    from dataloader.history import RunHistory

    runs = RunHistory(tmp_path / "runs.db").list()
    assert runs and runs[0]["status"] == "interrupted"
    assert json.loads((tmp_path / "state" / "slow.json").read_text())["checkpoints"] == {}


def test_show_state_says_where_the_state_was_committed(backend, tmp_path):
    from click.testing import CliRunner
    from dataloader.cli import cli
    from dataloader.cli_state import _origin

    MEMORY_TABLES["src"] = rows([1, 2])
    result = run(recipe(), backend)
    shown = CliRunner().invoke(cli, ["show-state", "job", "--state-dir", str(tmp_path / "state")], catch_exceptions=False)
    data = json.loads(shown.output)
    assert data["metadata"]["committed_in"] == "contract_memory"
    line = _origin("job", data, str(tmp_path / "state"))
    assert f"commit record that run {result.run_id} stored in the contract_memory destination" in line


def test_packed_keys_round_trip_in_every_form():
    import base64
    import zlib

    from dataloader.state import pack_keys, unpack_keys

    for keys in (["1", "2", "10", "-5", "0"], ["a", "b\x1fc", "ü"], ["01", "2"], [str(i) for i in range(0, 30_000, 3)]):
        assert sorted(unpack_keys(pack_keys(keys))) == sorted(keys)
    legacy = base64.b64encode(zlib.compress(b"x\x1ey")).decode()  # written before the tagged forms
    assert unpack_keys(legacy) == ["x", "y"]
