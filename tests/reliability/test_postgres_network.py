"""CSV → PostgreSQL through a proxy that breaks the connection at the worst moments.

Every case runs the installed CLI against the real server through :mod:`pg_proxy`, lets the first
run meet the fault (it retries or fails), runs the recipe a second time without faults, and checks
that the target holds the source's rows exactly once, as a multiset:

- the server's reply to COMMIT is lost (the server committed; the loader never hears it);
- the connection drops mid-COPY, or just before COMMIT (nothing committed: rolled back, retried);
- the network goes silent at COMMIT (no error ever arrives): the run fails in bounded time.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_proxy import PgProxy, pg_proxy

psycopg2 = pytest.importorskip("psycopg2")
pytest.importorskip("dataloader_postgres")
pytest.importorskip("dataloader_filestore")

ROWS = 3000
BATCH = 400


def source_rows() -> list[tuple[int, str, int]]:
    return [(i, f"name {i} é,\"q\"", i // 7) for i in range(1, ROWS + 1)]


class Project:
    """A CSV source, a recipe writing it into PostgreSQL through the proxy, and the CLI."""

    def __init__(self, root: Path, dataloader_bin: str, dsn: str, proxy: PgProxy, mode: str) -> None:
        self.root, self.bin, self.dsn, self.proxy, self.mode = root, dataloader_bin, dsn, proxy, mode
        self.table = f"net_{mode}_{uuid.uuid4().hex[:8]}"
        self.recipe_name = self.table
        self.csv = root / "source.csv"
        with self.csv.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "name", "updated"])
            writer.writerows(source_rows())

    def via_proxy(self) -> str:
        facts = psycopg2.extensions.parse_dsn(self.dsn)
        return (
            f"host=127.0.0.1 port={self.proxy.port} dbname={facts['dbname']} user={facts.get('user', 'postgres')} "
            "sslmode=disable gssencmode=disable"
        )

    def write_recipe(
        self, source: dict[str, Any] | None = None, checkpoint_every: int | None = None, **destination_extra: Any
    ) -> None:
        via_proxy = self.via_proxy() if source is None else self.dsn
        destination: dict[str, Any] = {
            "type": "postgres",
            "dsn": via_proxy,
            "table": f"public.{self.table}",
            "write_mode": self.mode,
            **destination_extra,
        }
        if self.mode == "merge":
            destination["merge_keys"] = ["id"]
        recipe = {
            "name": self.recipe_name,
            "source": source or {"type": "filestore", "path": str(self.csv), "format": "csv",
                                 "incremental": {"strategy": "modified_time"}},
            "transform": {"steps": [{"type": "cast", "columns": {"id": "int", "updated": "int"}}]},
            "destination": destination,
            "runtime": {"batch_size": BATCH, "retries": {"max_attempts": 3, "initial_delay": 0.1, "max_delay": 0.5}},
        }
        if checkpoint_every:
            recipe["runtime"]["checkpoint_every"] = checkpoint_every
        (self.root / "recipe.yaml").write_text(json.dumps(recipe), encoding="utf-8")

    def run(self, *extra: str, timeout: float = 180, state: str = "state") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
        env["DATALOADER_HISTORY"] = str(self.root / "runs.db")
        return subprocess.run(
            [self.bin, "run", str(self.root / "recipe.yaml"), "--state-dir", str(self.root / state), *extra],
            capture_output=True, text=True, timeout=timeout, cwd=self.root, env=env,
        )

    def target(self) -> Counter[tuple[Any, ...]]:
        con = psycopg2.connect(self.dsn)
        try:
            with con.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (f"public.{self.table}",))
                if cur.fetchone()[0] is None:
                    return Counter()
                cur.execute(f'SELECT id, name, updated FROM public."{self.table}"')
                return Counter(cur.fetchall())
        finally:
            con.close()


@pytest.fixture
def proxy(pg_dsn: str) -> Iterator[PgProxy]:
    facts = psycopg2.extensions.parse_dsn(pg_dsn)
    with pg_proxy(facts.get("host", "127.0.0.1"), int(facts.get("port", 5432)), admin_dsn=pg_dsn) as running:
        yield running


def _project(tmp_path: Path, dataloader_bin: str, pg_dsn: str, proxy: PgProxy, mode: str) -> Project:
    project = Project(tmp_path, dataloader_bin, pg_dsn, proxy, mode)
    project.write_recipe()
    return project


def _assert_exactly_once(project: Project, *runs: subprocess.CompletedProcess[str]) -> None:
    got = project.target()
    want = Counter(source_rows())
    outputs = "\n---\n".join(r.stdout + r.stderr for r in runs)
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    assert got == want, f"{sum(got.values())} rows, {len(got)} distinct, {duplicated} duplicated; runs:\n{outputs}"
    for result in runs:
        assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_lost_commit_reply_loads_every_row_exactly_once(tmp_path, dataloader_bin, pg_dsn, proxy, mode):
    """The server committed; the loader never heard it. No row may load twice."""
    project = _project(tmp_path, dataloader_bin, pg_dsn, proxy, mode)
    proxy.fail_on("commit_reply", "drop")
    first = project.run()
    assert proxy.struck() == 1, proxy.events
    second = project.run()
    assert second.returncode == 0, second.stderr
    _assert_exactly_once(project, first, second)


@pytest.mark.parametrize("lost", [1, 2, 4])
def test_lost_commit_reply_of_a_checkpoint_loads_every_row_exactly_once(tmp_path, dataloader_bin, pg_dsn, proxy, lost):
    """A checkpointed run (a commit every 800 rows) whose n-th commit reply is lost."""
    project = Project(tmp_path, dataloader_bin, pg_dsn, proxy, "append")
    project.write_recipe(checkpoint_every=2 * BATCH)
    proxy.fail_on("commit_reply", "drop", skip=lost - 1)
    first = project.run()
    assert proxy.struck() == 1, proxy.events
    second = project.run()
    assert second.returncode == 0, second.stderr
    _assert_exactly_once(project, first, second)


@pytest.mark.parametrize("event", ["copy_data", "commit"])
@pytest.mark.parametrize("mode", ["append", "merge"])
def test_connection_dropped_before_commit_rolls_back_and_retries(tmp_path, dataloader_bin, pg_dsn, proxy, mode, event):
    """Dropped mid-COPY or just before COMMIT: the server keeps nothing, the retry loads it all."""
    project = _project(tmp_path, dataloader_bin, pg_dsn, proxy, mode)
    proxy.fail_on(event, "drop")
    first = project.run()
    assert proxy.struck() == 1, proxy.events
    assert first.returncode == 0, first.stderr  # the engine's retry went through
    assert "retrying" in first.stdout + first.stderr
    _assert_exactly_once(project, first)
    second = project.run()
    assert second.returncode == 0, second.stderr
    _assert_exactly_once(project, first, second)


def test_silent_network_at_commit_fails_in_bounded_time(tmp_path, dataloader_bin, pg_dsn, proxy):
    """A proxy that stops forwarding at COMMIT: no error ever arrives, the reply deadline ends it."""
    project = Project(tmp_path, dataloader_bin, pg_dsn, proxy, "append")
    project.write_recipe(network_timeout=2, connect_timeout=2)
    proxy.fail_on("commit_reply", "blackhole")
    started = time.monotonic()
    first = project.run(timeout=120)
    elapsed = time.monotonic() - started
    assert proxy.struck() == 1, proxy.events
    assert elapsed < 30, f"took {elapsed:.1f}s:\n{first.stderr}"
    assert "Traceback" not in first.stderr
    second = project.run()
    assert second.returncode == 0, second.stderr
    _assert_exactly_once(project, first, second)


def test_server_ending_the_session_mid_copy_is_one_warning_line(tmp_path, dataloader_bin, pg_dsn, proxy):
    """What a server restart does to a running load: one warning line, a retry, every row once."""
    project = _project(tmp_path, dataloader_bin, pg_dsn, proxy, "append")
    proxy.fail_on("copy_data", "terminate")
    first = project.run()
    assert proxy.struck() == 1, proxy.events
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    warnings = [line for line in output.splitlines() if "warning" in line]
    assert len(warnings) == 1, output
    assert "retrying" in warnings[0] and "connection" in warnings[0]
    assert "SystemError" not in output and "Traceback" not in output, output
    _assert_exactly_once(project, first)


def test_server_ending_the_session_mid_read_is_one_warning_line(tmp_path, dataloader_bin, pg_dsn, proxy):
    """A PostgreSQL source whose session the server ends mid-COPY: one plain line, even with --debug."""
    project = Project(tmp_path, dataloader_bin, pg_dsn, proxy, "append")
    source_table = f"{project.table}_src"
    con = psycopg2.connect(pg_dsn)
    with con, con.cursor() as cur:
        cur.execute(f'CREATE TABLE public."{source_table}" (id bigint PRIMARY KEY, name text, updated bigint)')
        with project.csv.open(encoding="utf-8") as handle:
            cur.copy_expert(f'COPY public."{source_table}" FROM STDIN WITH (FORMAT csv, HEADER true)', handle)
    con.close()
    project.write_recipe({"type": "postgres", "dsn": project.via_proxy(), "table": f"public.{source_table}"})
    proxy.fail_on("copy_out", "terminate")
    first = subprocess.run(
        [dataloader_bin, "--debug", "run", str(tmp_path / "recipe.yaml"), "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env={**os.environ, "DATALOADER_HISTORY": str(tmp_path / "runs.db")},
    )
    assert proxy.struck() == 1, proxy.events
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    warnings = [line for line in output.splitlines() if "warning:" in line]
    assert len(warnings) == 1, output
    assert "reading the table" in warnings[0] and "closed the connection" in warnings[0]
    assert "SystemError" not in output and "Traceback" not in output and "PGRES_" not in output
    _assert_exactly_once(project, first)


def test_a_second_run_from_another_directory_fails_at_once_naming_the_first(tmp_path, dataloader_bin, pg_dsn, proxy):
    """Two runs of one recipe (separate state directories): the advisory lock stops the second.

    The first run is held at its COMMIT (the proxy swallows the reply) while the second starts;
    the second fails at once naming the first; the first is then SIGKILLed, and a third run
    finds the lock gone with it and leaves every row exactly once.
    """
    project = Project(tmp_path, dataloader_bin, pg_dsn, proxy, "append")
    project.write_recipe(network_timeout=120)
    proxy.fail_on("commit_reply", "blackhole")
    env = {**os.environ, "DATALOADER_HISTORY": str(tmp_path / "runs.db")}
    command = [dataloader_bin, "run", str(tmp_path / "recipe.yaml")]
    first = subprocess.Popen([*command, "--state-dir", str(tmp_path / "state-1")], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while proxy.struck() == 0:  # the first run is waiting for its COMMIT's reply
            assert first.poll() is None and time.monotonic() < deadline, "the first run never reached COMMIT"
            time.sleep(0.05)
        started = time.monotonic()
        second = subprocess.run([*command, "--state-dir", str(tmp_path / "state-2")], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert time.monotonic() - started < 15
        assert second.returncode == 1, second.stdout + second.stderr
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, second.stderr
        assert "is already running" in errors[0] and f"pid {first.pid}" in errors[0], errors[0]
        assert "advisory lock" in errors[0] and "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()
    third = project.run(state="state-3")
    assert third.returncode == 0, third.stdout + third.stderr
    _assert_exactly_once(project, third)
