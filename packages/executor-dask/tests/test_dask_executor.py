"""The dask executor on a real LocalCluster (2 worker processes): same rows as a local run, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from dataloader.engine import run_recipe
from dataloader.errors import EngineError
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend


def write_csv_files(folder: Path, files: int = 4, rows: int = 300) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        ids = list(range(f * rows, (f + 1) * rows))
        table = pa.table({
            "id": ids,
            "name": [None if i % 97 == 0 else f"n{i}" for i in ids],
            "amount": [i * 1.25 for i in ids],
        })
        pacsv.write_csv(table, folder / f"part-{f:02d}.csv")


def recipe(tmp: Path, source: dict[str, Any], destination: dict[str, Any], runtime: dict[str, Any], **extra: Any) -> Recipe:
    return Recipe.from_dict({
        "name": extra.pop("name", "scale"),
        "source": source,
        "destination": destination,
        "runtime": {"batch_size": 100, "dead_letter_path": str(tmp / "errors" / "{run_id}.jsonl"), **runtime},
        **extra,
    })


def dask_runtime(cluster: Any, tmp: Path) -> dict[str, Any]:
    return {"executor": "dask", "scheduler": cluster.scheduler_address, "staging": str(tmp / "staging")}


def duck_rows(path: Path, table: str = "t") -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    finally:
        con.close()


def has_table(database: Path, table: str) -> bool:
    """Whether the DuckDB file holds ``table`` (a failed run must not even create it)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone() != (0,)
    finally:
        con.close()


def staging_is_empty(tmp: Path, name: str = "scale") -> bool:
    folder = tmp / "staging" / name
    return not folder.exists() or not any(folder.iterdir())


# -- CSV files -> DuckDB -------------------------------------------------------------------
def test_csv_files_to_duckdb_equal_a_local_run(cluster, tmp_path):
    write_csv_files(tmp_path / "in")
    source = {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"}
    checks = [{"column": "name", "check": "not_null", "action": "dlq"}]
    events: list[Any] = []
    local = run_recipe(
        recipe(tmp_path, source, {"type": "duckdb", "database": str(tmp_path / "local.duckdb"), "table": "t"}, {},
               quality_checks=checks),
        LocalStateBackend(tmp_path / "state-local"), history=False,
    )
    remote = run_recipe(
        recipe(tmp_path, source, {"type": "duckdb", "database": str(tmp_path / "dask.duckdb"), "table": "t"},
               dask_runtime(cluster, tmp_path), quality_checks=checks),
        LocalStateBackend(tmp_path / "state-dask"), history=False, on_event=events.append,
    )
    assert (remote.rows_read, remote.rows_written, remote.rows_failed) == (local.rows_read, local.rows_written, local.rows_failed)
    assert (remote.rows_read, remote.rows_failed) == (1200, 13)
    assert duck_rows(tmp_path / "dask.duckdb") == duck_rows(tmp_path / "local.duckdb")
    # Rejected rows of every partition reach the run's one dead-letter file.
    letters = [json.loads(line) for line in Path(remote.dead_letter_path).read_text().splitlines()]
    assert sorted(row["record"]["id"] if "record" in row else row["id"] for row in letters) == [i for i in range(1200) if i % 97 == 0]
    notes = [e.message for e in events if e.kind == "info"]
    assert any(n.startswith("dask dashboard: http") for n in notes)
    assert sum(1 for n in notes if n.startswith("partition ")) == 4
    partitions = remote.state_after["metadata"]["partitions"]
    assert [p["rows_read"] for p in partitions["list"]] == [300] * 4 and partitions["count"] == 4
    assert staging_is_empty(tmp_path)


def test_a_check_that_needs_the_whole_run_is_refused(cluster, tmp_path):
    write_csv_files(tmp_path / "in", files=2, rows=10)
    the_recipe = recipe(
        tmp_path, {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"},
        {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"}, dask_runtime(cluster, tmp_path),
        quality_checks=[{"column": "id", "check": "unique", "action": "fail"}],
    )
    with pytest.raises(EngineError, match=r"quality_checks.0: the 'unique' check needs the whole run"):
        run_recipe(the_recipe, LocalStateBackend(tmp_path / "state"), history=False)
    assert not has_table(tmp_path / "out.duckdb", 't')


def test_a_worker_killed_mid_task_still_ends_with_the_exact_rows(cluster, tmp_path):
    from distributed import Client

    write_csv_files(tmp_path / "in", files=4, rows=200)
    the_recipe = recipe(
        tmp_path, {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"},
        {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"}, dask_runtime(cluster, tmp_path),
    )
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = run_recipe(the_recipe, LocalStateBackend(tmp_path / "state"), history=False)
        except BaseException as exc:
            outcome["error"] = exc

    with Client(cluster.scheduler_address) as client:
        client.restart()  # fresh worker processes: each pauses at its first read, holding its task
        thread = threading.Thread(target=run)
        thread.start()
        parts = tmp_path / "staging" / "scale"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(parts.glob("*/parts/*/*")):
            time.sleep(0.05)
        assert list(parts.glob("*/parts/*/*")), "no task started"
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].rows_written == 800
    assert [row[0] for row in duck_rows(tmp_path / "out.duckdb")] == list(range(800))
    assert staging_is_empty(tmp_path)


def csv_recipe_command(tmp: Path, runtime: dict[str, Any]) -> list[str]:
    """``dataloader run`` of a CSV files -> DuckDB recipe (``tmp/in/*.csv`` -> ``tmp/out.duckdb``)."""
    doc = {
        "name": "scale",
        "source": {"type": "filestore", "path": str(tmp / "in" / "*.csv"), "format": "csv"},
        "destination": {"type": "duckdb", "database": str(tmp / "out.duckdb"), "table": "t"},
        "runtime": {"batch_size": 100, **runtime},
    }
    path = tmp / "recipe.yaml"
    path.write_text(json.dumps(doc))
    return [str(Path(sys.executable).parent / "dataloader"), "run", str(path), "--state-dir", str(tmp / "state")]


def killed_then_rerun(command: list[str], tmp: Path, kill_at: str, between: Any = None) -> tuple[Any, Any, Any]:
    """The driver killed at ``kill_at``, ``between()`` looked at, then the same command again (which must succeed)."""
    env = {**os.environ, "DATALOADER_FAULT_KILL_AT": kill_at}
    killed = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    seen = between() if between is not None else None
    env.pop("DATALOADER_FAULT_KILL_AT")
    again = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    return killed, seen, again


def test_a_driver_killed_mid_run_resumes_only_the_unfinished_partitions(cluster, tmp_path):
    write_csv_files(tmp_path / "in", files=4, rows=200)

    def finished() -> int:
        manifests = list((tmp_path / "staging" / "scale").glob("*/done/*.json"))
        assert manifests, "the killed driver recorded no finished partition"
        return len(manifests)

    _, done, again = killed_then_rerun(csv_recipe_command(tmp_path, dask_runtime(cluster, tmp_path)), tmp_path, "batch_written", finished)
    assert f"{done} of 4 partitions were finished by an earlier attempt" in again.stdout
    assert [row[0] for row in duck_rows(tmp_path / "out.duckdb")] == list(range(800))
    assert staging_is_empty(tmp_path)


# -- Postgres -> Parquet dataset -----------------------------------------------------------
def parquet_rows(folder: Path) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM read_parquet('{folder}/**/*.parquet') ORDER BY id").fetchall()
    finally:
        con.close()


def test_postgres_to_parquet_dataset_equals_a_local_run_and_the_cursor_is_combined(cluster, tmp_path, pg, pg_section):
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS events")
        cur.execute("CREATE TABLE events (id bigint PRIMARY KEY, kind text, amount numeric(12,2), at timestamptz)")
        cur.execute(
            "INSERT INTO events SELECT g, 'k' || (g % 7), g * 0.5, timestamp '2026-01-01' + g * interval '1 minute' "
            "FROM generate_series(1, 3000) g"
        )
    source = pg_section(table="events", partition={"column": "id", "partitions": 4},
                        incremental={"cursor_column": "at", "primary_key": ["id"]})

    def run_both() -> tuple[Any, Any]:
        local = run_recipe(
            recipe(tmp_path, source, {"type": "filestore", "path": str(tmp_path / "local"), "format": "parquet"}, {}),
            LocalStateBackend(tmp_path / "state-local"), history=False,
        )
        remote = run_recipe(
            recipe(tmp_path, source, {"type": "filestore", "path": str(tmp_path / "dask"), "format": "parquet"},
                   dask_runtime(cluster, tmp_path)),
            LocalStateBackend(tmp_path / "state-dask"), history=False,
        )
        return local, remote

    local, remote = run_both()
    assert remote.rows_written == local.rows_written == 3000
    assert parquet_rows(tmp_path / "dask") == parquet_rows(tmp_path / "local")
    assert remote.state_after["cursor_values"] == local.state_after["cursor_values"]
    assert len(remote.state_after["metadata"]["partitions"]["list"]) == 4
    # The second run reads only what is new, under the combined high-water mark.
    with pg.cursor() as cur:
        cur.execute(
            "INSERT INTO events SELECT g, 'late', g, timestamp '2026-01-01' + g * interval '1 minute' "
            "FROM generate_series(3001, 3100) g"
        )
    local, remote = run_both()
    assert remote.rows_written == local.rows_written == 100
    assert parquet_rows(tmp_path / "dask") == parquet_rows(tmp_path / "local")
    assert len(parquet_rows(tmp_path / "dask")) == 3100
    assert staging_is_empty(tmp_path)


# -- S3 CSV files -> Postgres merge --------------------------------------------------------
def test_s3_csv_files_to_a_postgres_merge_equal_a_local_run(cluster, tmp_path, pg, pg_section, s3_bucket):
    fs, keys, bucket = s3_bucket
    for f in range(3):
        # Files overlap on their keys: the merge keeps one row per id, the last file's version.
        rows = [(i, f"v{f}-{i}") for i in range(f * 100, f * 100 + 150)]
        fs.pipe(f"{bucket}/in/part-{f}.csv", ("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows)).encode())
    with pg.cursor() as cur:
        for table in ("merged_local", "merged_dask"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, label text)")
            cur.execute(f"INSERT INTO {table} VALUES (5, 'before'), (1000, 'untouched')")
    source = {"type": "filestore", "path": f"s3://{bucket}/in/*.csv", "format": "csv", **keys}

    def destination(table: str) -> dict[str, Any]:
        return pg_section(table=table, write_mode="merge", merge_keys=["id"])

    # Batches of a partition must not hold the same key twice for a merge: one file, one key once.
    local = run_recipe(recipe(tmp_path, source, destination("merged_local"), {}, name="s3merge"),
                       LocalStateBackend(tmp_path / "state-local"), history=False)
    remote = run_recipe(recipe(tmp_path, source, destination("merged_dask"), dask_runtime(cluster, tmp_path), name="s3merge"),
                        LocalStateBackend(tmp_path / "state-dask"), history=False)
    assert remote.rows_written == local.rows_written == 450
    with pg.cursor() as cur:
        cur.execute("SELECT id, label FROM merged_local ORDER BY id")
        expected = cur.fetchall()
        cur.execute("SELECT id, label FROM merged_dask ORDER BY id")
        assert cur.fetchall() == expected
    assert len(expected) == 351 and dict(expected)[5] == "v0-5" and dict(expected)[120] == "v1-120" and dict(expected)[1000] == "untouched"
    assert staging_is_empty(tmp_path, "s3merge")


# -- DuckDB row ranges -> Parquet ------------------------------------------------------------
def test_duckdb_rowid_ranges_equal_a_local_run(cluster, tmp_path):
    con = duckdb.connect(str(tmp_path / "src.duckdb"))
    con.execute("CREATE TABLE src AS SELECT range AS id, 'r' || range AS label, range * 0.5 AS amount FROM range(2500)")
    con.close()
    source = {"type": "duckdb", "database": str(tmp_path / "src.duckdb"), "table": "src", "partitions": 3}
    runs = {
        "local": {},
        "parallel": {"parallelism": 2},
        "dask": dask_runtime(cluster, tmp_path),
    }
    results = {}
    for name, runtime in runs.items():
        results[name] = run_recipe(
            recipe(tmp_path, source, {"type": "filestore", "path": str(tmp_path / name), "format": "parquet"}, runtime),
            LocalStateBackend(tmp_path / f"state-{name}"), history=False,
        )
    assert {r.rows_written for r in results.values()} == {2500}
    assert parquet_rows(tmp_path / "dask") == parquet_rows(tmp_path / "parallel") == parquet_rows(tmp_path / "local")
    assert results["dask"].state_after["metadata"]["partitions"]["count"] == 3
    assert staging_is_empty(tmp_path)


def test_a_failing_check_on_a_worker_fails_the_run_and_publishes_nothing(cluster, tmp_path):
    write_csv_files(tmp_path / "in", files=3, rows=50)  # ids 0 (first file) and 97 (second) have no name
    the_recipe = recipe(
        tmp_path, {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"},
        {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"}, dask_runtime(cluster, tmp_path),
        quality_checks=[{"column": "name", "check": "not_null", "action": "fail"}],
    )
    # Whichever partition fails first is the one reported, by name: its row number counts within its file.
    with pytest.raises(EngineError, match=r"quality_checks.*not_null.*first at row (1|48) \(value None\); the run is rolled back") as failed:
        run_recipe(the_recipe, LocalStateBackend(tmp_path / "state"), history=False)
    message = str(failed.value)
    first, second = str(tmp_path / "in" / "part-00.csv"), str(tmp_path / "in" / "part-01.csv")
    assert (message.startswith(f"partition {first}: ") and "first at row 1 " in message) or (
        message.startswith(f"partition {second}: ") and "first at row 48 " in message
    ), message
    assert failed.value.context["partition"] in (first, second)
    assert not has_table(tmp_path / "out.duckdb", 't')


def test_a_file_changed_after_a_killed_driver_is_read_again(cluster, tmp_path):
    write_csv_files(tmp_path / "in", files=3, rows=100)

    def change_the_first_file() -> None:
        assert len(list((tmp_path / "staging" / "scale").glob("*/done/*.json"))) == 3
        pacsv.write_csv(pa.table({"id": [10_000, 10_001], "name": ["new", "rows"], "amount": [1.0, 2.0]}), tmp_path / "in" / "part-00.csv")

    command = csv_recipe_command(tmp_path, dask_runtime(cluster, tmp_path))
    _, _, again = killed_then_rerun(command, tmp_path, "before_commit", change_the_first_file)
    assert "2 of 3 partitions were finished by an earlier attempt" in again.stdout
    assert [row[0] for row in duck_rows(tmp_path / "out.duckdb")] == [*range(100, 300), 10_000, 10_001]


def test_a_driver_killed_mid_run_postgres_to_parquet_ends_with_the_exact_rows(cluster, tmp_path, pg, pg_section):
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS killed_src")
        cur.execute("CREATE TABLE killed_src (id bigint PRIMARY KEY, label text)")
        cur.execute("INSERT INTO killed_src SELECT g, 'l' || g FROM generate_series(1, 4000) g")
    doc = {
        "name": "pgkill",
        "source": pg_section(table="killed_src", partition={"column": "id", "partitions": 4}),
        "destination": {"type": "filestore", "path": str(tmp_path / "out"), "format": "parquet"},
        "runtime": {"batch_size": 500, **dask_runtime(cluster, tmp_path)},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(doc))
    cli = [str(Path(sys.executable).parent / "dataloader"), "run", str(path), "--state-dir", str(tmp_path / "state")]
    env = {**os.environ, "DATALOADER_FAULT_KILL_AT": "batch_written"}
    killed = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    env.pop("DATALOADER_FAULT_KILL_AT")
    again = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "partitions were finished by an earlier attempt" in again.stdout
    assert [row[0] for row in parquet_rows(tmp_path / "out")] == list(range(1, 4001))
    assert staging_is_empty(tmp_path, "pgkill")


def test_an_unreachable_scheduler_is_one_clear_error_and_nothing_is_written(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_csv_files(tmp_path / "in", files=2, rows=10)
    the_recipe = recipe(
        tmp_path, {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"},
        {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"},
        {"executor": "dask", "scheduler": f"tcp://127.0.0.1:{port}", "connect_timeout_s": 2, "staging": str(tmp_path / "staging")},
    )
    with pytest.raises(EngineError, match=rf"runtime.scheduler: cannot reach the dask scheduler at tcp://127.0.0.1:{port}"):
        run_recipe(the_recipe, LocalStateBackend(tmp_path / "state"), history=False)
    assert not has_table(tmp_path / "out.duckdb", 't')
    assert LocalStateBackend(tmp_path / "state").load("scale").get("cursor_values", {}) == {}


def test_an_unknown_dask_key_is_refused_by_the_executors_model(tmp_path):
    from dataloader.errors import RecipeError

    with pytest.raises(RecipeError, match="runtime"):
        recipe(tmp_path, {"type": "filestore", "path": str(tmp_path / "*.csv"), "format": "csv"},
               {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "t"},
               {"executor": "dask", "schedular": "local"})


def test_the_entry_point_module_imports_no_dask():
    code = "import sys, dataloader_dask.plugin; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# -- staging on an object store --------------------------------------------------------------
def aws_environment(keys: dict[str, Any], monkeypatch: Any) -> dict[str, str]:
    """The standard AWS variables reaching moto, set for the driver; pass them to the workers."""
    aws = {
        "AWS_ACCESS_KEY_ID": keys["key"], "AWS_SECRET_ACCESS_KEY": keys["secret"],
        "AWS_DEFAULT_REGION": keys["region"], "AWS_ENDPOINT_URL": keys["endpoint_url"],
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    return aws


def test_staging_on_s3_equals_a_local_run_and_is_removed_after_the_commit(tmp_path, s3_bucket, monkeypatch):
    """``staging: s3://...`` with the store's credentials and endpoint from the standard AWS
    environment variables, which the driver and every worker process have."""
    from distributed import LocalCluster

    fs, keys, bucket = s3_bucket
    aws = aws_environment(keys, monkeypatch)
    write_csv_files(tmp_path / "in", files=3, rows=100)
    source = {"type": "filestore", "path": str(tmp_path / "in" / "*.csv"), "format": "csv"}
    local = run_recipe(
        recipe(tmp_path, source, {"type": "duckdb", "database": str(tmp_path / "local.duckdb"), "table": "t"}, {}),
        LocalStateBackend(tmp_path / "state-local"), history=False,
    )
    events: list[Any] = []
    staged: list[int] = []

    def heard(event: Any) -> None:  # a finished partition's parts are in the bucket before the commit
        events.append(event)
        if event.kind == "info" and (event.message or "").startswith("partition "):
            fs.invalidate_cache()
            staged.append(sum(1 for p in fs.find(f"{bucket}/stage") if p.endswith(".parquet")))

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=aws) as s3_cluster:
        runtime = {"executor": "dask", "scheduler": s3_cluster.scheduler_address, "staging": f"s3://{bucket}/stage"}
        remote = run_recipe(
            recipe(tmp_path, source, {"type": "duckdb", "database": str(tmp_path / "dask.duckdb"), "table": "t"}, runtime),
            LocalStateBackend(tmp_path / "state-dask"), history=False, on_event=heard,
        )
    assert staged and min(staged) >= 1, staged
    assert remote.rows_written == local.rows_written == 300
    assert duck_rows(tmp_path / "dask.duckdb") == duck_rows(tmp_path / "local.duckdb")
    assert sum(1 for e in events if e.kind == "info" and (e.message or "").startswith("partition ")) == 3
    fs.invalidate_cache()
    assert [p for p in fs.find(f"{bucket}/stage") if not p.endswith("/")] == []
    said = json.dumps(remote.state_after, default=str) + " ".join(str(e.message) for e in events)
    assert keys["secret"] not in said and keys["key"] not in said


def test_a_driver_killed_with_staging_on_s3_resumes_from_the_staged_partitions(tmp_path, s3_bucket, monkeypatch):
    from distributed import LocalCluster

    fs, keys, bucket = s3_bucket
    aws = aws_environment(keys, monkeypatch)
    write_csv_files(tmp_path / "in", files=3, rows=100)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=aws) as s3_cluster:
        runtime = {"executor": "dask", "scheduler": s3_cluster.scheduler_address, "staging": f"s3://{bucket}/stage"}

        def staged_and_unpublished() -> None:
            assert not has_table(tmp_path / "out.duckdb", "t")
            fs.invalidate_cache()
            assert len([p for p in fs.find(f"{bucket}/stage") if "/done/" in p]) == 3

        killed, _, again = killed_then_rerun(csv_recipe_command(tmp_path, runtime), tmp_path, "before_commit", staged_and_unpublished)
    assert "3 of 3 partitions were finished by an earlier attempt" in again.stdout
    assert [row[0] for row in duck_rows(tmp_path / "out.duckdb")] == list(range(300))
    fs.invalidate_cache()
    assert [p for p in fs.find(f"{bucket}/stage") if not p.endswith("/")] == []
    for output in (killed.stdout, killed.stderr, again.stdout, again.stderr):
        assert keys["secret"] not in output and keys["key"] not in output
