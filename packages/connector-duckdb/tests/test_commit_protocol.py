"""The core's commit protocol on DuckDB: the commit record, its old form, and who holds the file.

The record is the core's ``CommitRecord`` in ``"catalog"."main"."_dataloader_state"``, written by
the core's ``CommitRecordTable`` inside the same transaction as the rows, so a lost local state
file never reloads anything. DuckDB lets one process at a time hold a file it writes: a second
process is told, in one line, which process holds it and what to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import Warehouse, run_cli, write_recipe
from dataloader.errors import LeaseHeldError
from dataloader.run.ledger import LeaseHolder


def _con(path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=read_only)


def _incremental_recipe(folder: Path) -> Path:
    con = _con(folder / "src.duckdb", read_only=False)
    con.execute("CREATE TABLE IF NOT EXISTS src AS SELECT range AS id, range // 2 AS updated FROM range(10)")
    con.close()
    return write_recipe(
        folder,
        "inc",
        """
name: inc
source:
  type: duckdb
  database: src.duckdb
  table: src
  incremental: {strategy: cursor, cursor_column: updated, primary_key: [id]}
destination: {type: duckdb, database: dst.duckdb, table: copy}
""",
    )


def _add_source_rows(folder: Path) -> None:
    con = _con(folder / "src.duckdb", read_only=False)
    con.execute("INSERT INTO src VALUES (10, 4), (11, 9)")
    con.close()


def _record(folder: Path) -> dict:
    con = _con(folder / "dst.duckdb")
    try:
        rows = con.execute("SELECT recipe_name, run_id, state FROM main._dataloader_state").fetchall()
    finally:
        con.close()
    assert len(rows) == 1
    recipe_name, run_id, text = rows[0]
    record = json.loads(text)
    assert (record["recipe_name"], record["run_id"]) == (recipe_name, run_id)
    return record


def _copied(folder: Path) -> list[tuple]:
    con = _con(folder / "dst.duckdb")
    try:
        return con.execute("SELECT count(*), count(DISTINCT id), max(id) FROM copy").fetchall()
    finally:
        con.close()


def test_the_commit_record_is_the_cores_record_and_outlives_the_local_state(tmp_path: Path) -> None:
    recipe = _incremental_recipe(tmp_path)
    first = run_cli("run", str(recipe), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    record = _record(tmp_path)
    assert set(record) == {"recipe_name", "run_id", "state", "published", "committed_at"}
    assert record["recipe_name"] == "inc"
    assert record["published"]["final"] is True and record["published"]["rows"] == 10
    assert record["state"]["cursor_values"] == {"updated": 4}
    # The local state is lost: the destination's record says where the recipe got to.
    for path in (tmp_path / ".state").iterdir():
        path.unlink()
    _add_source_rows(tmp_path)
    second = run_cli("run", str(recipe), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _copied(tmp_path) == [(12, 12, 11)]
    assert _record(tmp_path)["run_id"] != record["run_id"]


def test_a_record_written_by_the_previous_version_is_read_and_replaced(tmp_path: Path) -> None:
    """Older versions stored the bare state as JSON, in a table with a TIMESTAMPTZ ``committed_at``."""
    recipe = _incremental_recipe(tmp_path)
    first = run_cli("run", str(recipe), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    state = _record(tmp_path)["state"]
    con = _con(tmp_path / "dst.duckdb", read_only=False)
    con.execute("DROP TABLE main._dataloader_state")
    con.execute(
        "CREATE TABLE main._dataloader_state "
        "(recipe_name VARCHAR, run_id VARCHAR, state VARCHAR, committed_at TIMESTAMP WITH TIME ZONE)"
    )
    con.execute("INSERT INTO main._dataloader_state VALUES ('inc', 'old-run', ?, now())", [json.dumps(state)])
    con.close()
    for path in (tmp_path / ".state").iterdir():
        path.unlink()
    _add_source_rows(tmp_path)
    second = run_cli("run", str(recipe), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _copied(tmp_path) == [(12, 12, 11)]  # nothing reloaded: the old record's cursor was used
    record = _record(tmp_path)
    assert record["state"]["cursor_values"] == {"updated": 9} and record["published"]["final"] is True


def test_a_second_process_writing_the_file_is_told_who_holds_it(tmp_path: Path) -> None:
    """Two real ``dataloader run`` processes on one DuckDB file: the second fails at once, in one line."""
    con = _con(tmp_path / "dst.duckdb", read_only=False)
    con.execute("CREATE TABLE t (id BIGINT)")
    con.close()
    # A source query that runs until it is stopped keeps the first run, and its hold on dst.duckdb, alive.
    slow = write_recipe(
        tmp_path,
        "slow",
        """
name: slow
source: {type: duckdb, database: ":memory:", query: "SELECT sum(range) AS id FROM range(1000000000000)"}
destination: {type: duckdb, database: dst.duckdb, table: t}
""",
    )
    quick = write_recipe(
        tmp_path,
        "quick",
        """
name: quick
source: {type: duckdb, database: ":memory:", query: "SELECT range AS id FROM range(3)"}
destination: {type: duckdb, database: dst.duckdb, table: t}
""",
    )
    points = tmp_path / "points.log"
    first = subprocess.Popen(
        [sys.executable, "-c", "from dataloader.cli import console_main; console_main()", "run", str(slow)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DATALOADER_FAULT_LOG": str(points)},
    )
    try:
        _wait_until_held(points, first)
        second = run_cli("run", str(quick), cwd=tmp_path)
        output = second.stdout + second.stderr
        assert second.returncode == 1, output
        errors = [line for line in output.splitlines() if "error" in line.lower()]
        assert errors == [
            f"error: quick: could not open DuckDB database {tmp_path / 'dst.duckdb'}: {tmp_path / 'dst.duckdb'} is open in another "
            f"process (pid {first.pid}), and DuckDB lets one process at a time hold a file that is written: wait "
            f"for that process to finish, or stop it (kill {first.pid}) if it should not be running, then run again"
        ]
        assert "retrying" not in output and "Traceback" not in output
    finally:
        # Killed, as "stop it" may mean: the kernel drops its lock, and its uncommitted rows were never there.
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    again = run_cli("run", str(quick), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    con = _con(tmp_path / "dst.duckdb")
    assert con.execute("SELECT list(id ORDER BY id) FROM t").fetchall() == [([0, 1, 2],)]  # the first run's nothing
    con.close()


def _wait_until_held(points: Path, process: subprocess.Popen, deadline_s: float = 60) -> None:
    """Until the first run has saved its run mark: by then it holds the destination file open.

    Read from its fault-point log rather than by opening the file here, which would itself hold
    the file for a moment and could make the first run the one refused.
    """
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        assert process.poll() is None, process.communicate()[0]
        if points.exists() and "state_write" in points.read_text():
            return
        time.sleep(0.05)
    pytest.fail(f"the first run did not save its run mark within {deadline_s} s")


def test_one_recipe_is_locked_per_database_file_within_a_process(warehouse: Warehouse) -> None:
    first, second = warehouse.destination("t"), warehouse.destination("t")
    holder = LeaseHolder.current("run-1")
    first.open()
    second.open()
    try:
        first.acquire_lock("load", holder)
        with pytest.raises(LeaseHeldError, match="recipe 'load' is already running \\(run run-1 on host .*target.duckdb"):
            second.acquire_lock("load", LeaseHolder.current("run-2"))
        second.acquire_lock("other", LeaseHolder.current("run-2"))  # another recipe on the same file
        first.release_lock("load")
        second.acquire_lock("load", LeaseHolder.current("run-2"))
    finally:
        first.close()
        second.close()
    # close() released what each held.
    third = warehouse.destination("t")
    third.open()
    try:
        third.acquire_lock("load", LeaseHolder.current("run-3"))
    finally:
        third.close()
