"""A load is one transaction: invisible until commit, gone without a trace on abort or kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import Warehouse, people
from dataloader.batch import Batch
from dataloader.errors import ConnectorError, DataLoaderError, TransientConnectorError
from dataloader.state import State


def tables_in(warehouse: Warehouse) -> list[str]:
    return [row[0] for row in warehouse.query("SELECT table_name FROM duckdb_tables() ORDER BY 1")]


def test_abort_leaves_table_unchanged(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2]))
    warehouse.run({"table": "t"})
    for mode in ("append", "overwrite", "merge"):
        connector = warehouse.destination("t", write_mode=mode, merge_keys=["id"])
        connector.open()
        try:
            connector.begin(people([]).schema, mode, State())
            connector.write_batch(Batch.from_arrow(people([2, 3, 4])), State())
            connector.abort()
        finally:
            connector.close()
    assert warehouse.query("SELECT id, name FROM t ORDER BY id") == [(1, "person 1"), (2, "person 2")]
    assert tables_in(warehouse) == ["_dataloader_state", "t"]


def test_failed_run_leaves_table_and_committed_state_unchanged(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2]))
    first = warehouse.run({"table": "t"}, name="people")
    warehouse.seed(pa.table({"id": [3, 4, 5], "name": ["x", "y", "z"]}))
    failing_step = [{"type": "cast", "columns": {"name": "int"}}]  # 'x' is not a number: the run fails
    with pytest.raises(DataLoaderError):
        warehouse.run({"table": "t", "write_mode": "overwrite"}, name="people", transform=failing_step)
    assert warehouse.query("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    assert warehouse.query("SELECT run_id FROM _dataloader_state WHERE recipe_name = 'people'") == [(first.run_id,)]


def test_reader_connection_during_the_load_sees_old_rows(warehouse: Warehouse) -> None:
    warehouse.seed(people([1, 2]))
    warehouse.run({"table": "t"})
    connector = warehouse.destination("t", write_mode="overwrite")
    connector.open()
    # Same process, so the same database instance: DuckDB's isolation is all that hides the load.
    reader = duckdb.connect(warehouse.target_db)
    try:
        connector.begin(people([]).schema, "overwrite", State())
        connector.write_batch(Batch.from_arrow(people([7, 8, 9])), State())
        assert reader.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,)]
        assert "_dataloader_stage" not in str(reader.execute("SELECT table_name FROM duckdb_tables()").fetchall())
        connector.commit(State())
        assert reader.execute("SELECT id FROM t ORDER BY id").fetchall() == [(7,), (8,), (9,)]
    finally:
        reader.close()
        connector.close()


def test_killed_load_leaves_table_unchanged(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.seed(pa.table({"id": pa.array(range(50_000), pa.int64()), "name": ["x"] * 50_000}))
    warehouse.run({"table": "t"}, batch_size=10_000)
    warehouse.seed(pa.table({"id": pa.array(range(100_000, 400_000), pa.int64()), "name": ["y"] * 300_000}))
    script = tmp_path / "killed_load.py"
    script.write_text(_KILLED_LOAD_SCRIPT)
    child = subprocess.Popen(
        [sys.executable, str(script), warehouse.source_db, warehouse.target_db, str(tmp_path / "state")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "DATALOADER_HISTORY": str(tmp_path / "runs.db")},
    )
    try:
        assert child.stdout.readline().strip() == b"mid-load"  # several batches are staged by now
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
        child.stdin.close()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert warehouse.query("SELECT count(*), min(id), max(id), min(name) FROM t") == [(50_000, 0, 49_999, "x")]
    assert tables_in(warehouse) == ["_dataloader_state", "t"]
    # The next run notices the interrupted one and loads normally.
    result = warehouse.run({"table": "t", "write_mode": "overwrite"}, name="killed", batch_size=50_000)
    assert result.rows_written == 300_000
    assert warehouse.query("SELECT count(*) FROM t") == [(300_000,)]


_KILLED_LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import dataloader_duckdb.plugin
    from dataloader import hookimpl
    from dataloader.engine import run_recipe
    from dataloader.plugins import PluginHost
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    source_db, target_db, state_dir = sys.argv[1:4]


    class StopMidLoad:
        written = 0

        @hookimpl
        def batch_written(self, run, batch, rows):
            self.written += 1
            if self.written == 3:
                print("mid-load", flush=True)
                sys.stdin.read()  # wait here until the test kills this process


    host = PluginHost(load_entrypoints=False)
    host.register(dataloader_duckdb.plugin, name="duckdb")
    host.register(StopMidLoad(), name="stop")
    recipe = Recipe.from_dict(
        {
            "name": "killed",
            "source": {"type": "duckdb", "database": source_db, "table": "src"},
            "destination": {"type": "duckdb", "database": target_db, "table": "t", "write_mode": "overwrite"},
            "runtime": {"batch_size": 20000},
        }
    )
    run_recipe(recipe, LocalStateBackend(Path(state_dir)), host=host, history=False)
    """
)


def test_quoted_identifiers_with_spaces_capitals_and_quotes(warehouse: Warehouse) -> None:
    odd = pa.table(
        {
            "Key Id": pa.array([1, 2, 2], pa.int64()),
            'Say "hi"': ["a", "b", "c"],
            "UPPER.case": [10, 20, 30],
        }
    )
    warehouse.seed(odd, name='"Raw Data"')
    source = {"type": "duckdb", "database": warehouse.source_db, "table": '"Raw Data"'}
    destination = {"table": 'My Schema.Odd "Quoted" Table', "write_mode": "merge", "merge_keys": ["Key Id"]}
    warehouse.run(destination, source)
    warehouse.run(destination, source)
    rows = warehouse.query('SELECT * FROM "My Schema"."Odd ""Quoted"" Table" ORDER BY 1')
    assert rows == [(1, "a", 10), (2, "c", 30)]
    assert warehouse.query("SELECT column_name FROM duckdb_columns() WHERE schema_name = 'My Schema'") == [
        ("Key Id",),
        ('Say "hi"',),
        ("UPPER.case",),
    ]


def test_database_locked_by_another_process_fails_at_once_naming_the_pid(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]), database=warehouse.target_db)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, warehouse.target_db], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"
        connector = warehouse.destination("t")
        with pytest.raises(ConnectorError, match=f"target.duckdb is open in another process \\(pid {holder.pid}\\)") as info:
            connector.open()
        assert not isinstance(info.value, TransientConnectorError)
    finally:
        holder.stdin.close()  # the holder exits when its stdin closes
        holder.wait()
        holder.stdout.close()


_HOLD_LOCK = "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"


def test_columns_differing_only_in_case_are_refused(warehouse: Warehouse) -> None:
    warehouse.seed(people([1]))
    connector = warehouse.destination("t")
    connector.open()
    try:
        with pytest.raises(DataLoaderError, match="columns 'Name' and 'name' differ only in case"):
            connector.begin(pa.schema([("Name", pa.string()), ("name", pa.string())]), "append", State())
    finally:
        connector.close()
    assert tables_in(warehouse) == []


def test_error_inside_the_streamed_insert_is_raised_and_rolls_back(warehouse: Warehouse) -> None:
    """Batches go to one INSERT on a helper thread; its failure reaches the caller, nothing hangs."""
    con = duckdb.connect(warehouse.target_db)
    try:
        con.execute("CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR)")
        con.execute("INSERT INTO t VALUES (1, 'kept')")
    finally:
        con.close()
    connector = warehouse.destination("t", write_mode="append")
    connector.open()
    try:
        connector.begin(people([]).schema, "append", State())
        connector.write_batch(Batch.from_arrow(people([2, 3])), State())
        bad = pa.table({"id": pa.array([4, None], pa.int64()), "name": ["ok", "no id"]})
        with pytest.raises(DataLoaderError, match="NOT NULL"):
            for _ in range(20):  # the failure surfaces at a later write or, at the latest, at commit
                connector.write_batch(Batch.from_arrow(bad), State())
            connector.commit(State())
        connector.abort()
    finally:
        connector.close()
    assert warehouse.query("SELECT id, name FROM t ORDER BY id") == [(1, "kept")]


@pytest.mark.parametrize("preserve_order", [False, True])
def test_many_batches_of_one_run_all_arrive(warehouse: Warehouse, preserve_order: bool) -> None:
    """Every row of a run of many odd-sized batches lands; in load order when the recipe asks."""
    connector = warehouse.destination("t", write_mode="append", preserve_insertion_order=preserve_order)
    connector.open()
    try:
        connector.begin(people([]).schema, "append", State())
        start = 0
        for size in [1, 7, 300, 2, 5000, 13, 20000] * 5:
            connector.write_batch(Batch.from_arrow(people(list(range(start, start + size)))), State())
            start += size
        connector.commit(State())
    finally:
        connector.close()
    ids = [row[0] for row in warehouse.query("SELECT id FROM t")]
    assert sorted(ids) == list(range(start))
    if preserve_order:
        assert ids == list(range(start))
