"""Two runs of one recipe at once: exactly one runs, the other fails at once naming it; no row twice.

The first run is held open at its first written batch (``DATALOADER_FAULT_PAUSE``); the second
starts while it holds the recipe's lease. Both use the real command against a real destination.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dataloader_duckdb")
pytest.importorskip("dataloader_filestore")

ROWS = 2000


def write_csv(path: Path) -> list[tuple[int, str]]:
    rows = [(i, f"name {i}") for i in range(1, ROWS + 1)]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name"])
        writer.writerows(rows)
    return rows


def start(bin_: str, recipe: Path, state_dir: Path, log: Path | None, pause: str | None, work: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
    env["DATALOADER_HISTORY"] = str(work / "runs.db")
    if log is not None:
        env["DATALOADER_FAULT_LOG"] = str(log)
    if pause:
        env["DATALOADER_FAULT_PAUSE"] = pause
    return subprocess.Popen(
        [bin_, "run", str(recipe), "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=work,
    )


def wait_for(log: Path, what: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and what in log.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"the first run never reached {what}")


def both(bin_: str, recipe: Path, work: Path, second_state: Path) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    log = work / "points.log"
    first = start(bin_, recipe, work / "state", log, "batch_written:4", work)
    wait_for(log, "batch_written", first)
    second = start(bin_, recipe, second_state, None, None, work)
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=120)
    return (
        subprocess.CompletedProcess(first.args, first.returncode, out1, err1),
        subprocess.CompletedProcess(second.args, second.returncode, out2, err2),
    )


def recipe_file(work: Path, source_csv: Path, destination: dict[str, Any]) -> Path:
    recipe = {
        "name": "concurrent",
        "source": {"type": "filestore", "path": str(source_csv), "format": "csv", "incremental": {"strategy": "modified_time"}},
        "transform": {"steps": [{"type": "cast", "columns": {"id": "int"}}]},
        "destination": {**destination, "write_mode": "append"},
        "runtime": {"batch_size": 500, "retries": {"max_attempts": 1}},
    }
    path = work / "recipe.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    return path


def duckdb_rows(path: Path) -> Counter[tuple[int, str]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return Counter(tuple(r) for r in con.execute("select id, name from main.t").fetchall())


def test_two_runs_with_one_state_folder_give_one_run_and_one_refusal(tmp_path: Path, dataloader_bin: str) -> None:
    expected = Counter(write_csv(tmp_path / "source.csv"))
    recipe = recipe_file(tmp_path, tmp_path / "source.csv", {"type": "duckdb", "database": str(tmp_path / "t.duckdb"), "table": "main.t"})
    first, second = both(dataloader_bin, recipe, tmp_path, tmp_path / "state")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 1
    lines = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "recipe 'concurrent' is already running (run " in lines[0] and ", pid " in lines[0], second.stderr
    assert "Traceback" not in second.stderr
    assert duckdb_rows(tmp_path / "t.duckdb") == expected
    # The loser wrote no state over the winner's: a third run finds nothing new.
    third = subprocess.run([dataloader_bin, "run", str(recipe), "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, cwd=tmp_path)
    assert third.returncode == 0 and duckdb_rows(tmp_path / "t.duckdb") == expected


def test_two_runs_from_two_folders_into_postgres_never_duplicate(tmp_path: Path, dataloader_bin: str, pg_dsn: str) -> None:
    """The issue's case: CSV into an existing Postgres table, the second run from another folder."""
    import psycopg2

    expected = Counter(write_csv(tmp_path / "source.csv"))
    with psycopg2.connect(pg_dsn) as con, con.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS public.concurrent_target")
        cur.execute("CREATE TABLE public.concurrent_target (id bigint, name text)")
    recipe = recipe_file(tmp_path, tmp_path / "source.csv", {"type": "postgres", "dsn": pg_dsn, "table": "public.concurrent_target"})
    first, second = both(dataloader_bin, recipe, tmp_path, tmp_path / "other-machine" / "state")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 1, second.stdout + second.stderr
    assert "already running" in second.stderr and "Traceback" not in second.stderr
    con = psycopg2.connect(pg_dsn)
    with con.cursor() as cur:
        cur.execute("SELECT id, name FROM public.concurrent_target")
        got = Counter(tuple(r) for r in cur.fetchall())
    con.close()
    assert got == expected
    # Run again from the other folder: its state comes from the destination, so nothing is reloaded.
    again = subprocess.run(
        [dataloader_bin, "run", str(recipe), "--state-dir", str(tmp_path / "other-machine" / "state")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    con = psycopg2.connect(pg_dsn)
    with con.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.concurrent_target")
        assert cur.fetchone()[0] == ROWS
    con.close()
