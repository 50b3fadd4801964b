"""Bad input and bad settings on the way into PostgreSQL, through the installed CLI.

Each case starts from a target that already holds a committed run, runs ``dataloader run`` on
something that cannot load, and checks: exit code 1, one ``error:`` line that names what is wrong
and what to do, no traceback, no secret anywhere in the output or the run history, and the
target's rows, the commit record and the state file unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

psycopg2 = pytest.importorskip("psycopg2")
pytest.importorskip("dataloader_postgres")
pytest.importorskip("dataloader_filestore")

SECRET = "canary-Pw-7f3a9c"


class Project:
    def __init__(self, root: Path, dataloader_bin: str, dsn: str) -> None:
        self.root, self.bin, self.dsn = root, dataloader_bin, dsn
        self.table = f"bad_{uuid.uuid4().hex[:8]}"
        self.name = self.table

    def recipe(self, csv_text: str, **destination: Any) -> None:
        (self.root / "source.csv").write_bytes(csv_text.encode("utf-8"))
        section = {"type": "postgres", "dsn": self.dsn, "table": f"public.{self.table}", "write_mode": "append"}
        section.update(destination)
        recipe = {
            "name": self.name,
            "source": {"type": "filestore", "path": str(self.root / "source.csv"), "format": "csv"},
            "destination": section,
            "runtime": {"retries": {"max_attempts": 3, "initial_delay": 0.2}},
        }
        (self.root / "recipe.yaml").write_text(json.dumps(recipe), encoding="utf-8")

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATALOADER_HISTORY": str(self.root / "runs.db")}
        return subprocess.run(
            [self.bin, *extra, "run", str(self.root / "recipe.yaml"), "--state-dir", str(self.root / "state")],
            capture_output=True, text=True, timeout=120, cwd=self.root, env=env,
        )

    def history(self) -> str:
        env = {**os.environ, "DATALOADER_HISTORY": str(self.root / "runs.db")}
        result = subprocess.run([self.bin, "runs", "--json"], capture_output=True, text=True, timeout=60,
                                cwd=self.root, env=env)
        return result.stdout + result.stderr

    def snapshot(self) -> tuple[Any, ...]:
        con = psycopg2.connect(self.dsn)
        try:
            with con.cursor() as cur:
                cur.execute(f'SELECT * FROM public."{self.table}" ORDER BY 1')
                rows = cur.fetchall()
                cur.execute("SELECT run_id, state FROM public._dataloader_state WHERE recipe_name = %s", (self.name,))
                record = cur.fetchall()
        finally:
            con.close()
        state = self.root / "state" / f"{self.name}.json"
        return rows, record, state.read_text() if state.exists() else None


@pytest.fixture
def project(tmp_path: Path, dataloader_bin: str, pg_dsn: str) -> Project:
    """A project whose first run loaded two rows into PostgreSQL."""
    p = Project(tmp_path, dataloader_bin, pg_dsn)
    p.recipe("id,name\n1,ada\n2,grace\n")
    first = p.run()
    assert first.returncode == 0, first.stdout + first.stderr
    return p


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "SystemError" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in: {errors[0]}"
    return errors[0]


def test_nul_character_in_a_text_value_names_column_and_row_and_commits_nothing(project):
    before = project.snapshot()
    project.recipe("id,name\n3,ok\n4,bad\x00value\n5,ok\n")
    error = assert_one_clear_error(project.run(), "column 'name'", "row 2", "NUL", "nul_bytes: remove")
    assert "invalid byte sequence" not in error
    assert project.snapshot() == before


def test_nul_bytes_remove_drops_the_character(project):
    project.recipe("id,name\n3,bad\x00value\n", nul_bytes="remove")
    result = project.run()
    assert result.returncode == 0, result.stdout + result.stderr
    rows = project.snapshot()[0]
    assert (3, "badvalue") in rows and len(rows) == 3


def test_connection_refused_fails_in_seconds_with_one_message(project):
    before = project.snapshot()
    project.recipe("id,name\n3,c\n", dsn=None, host="127.0.0.1", port=1, database="x", user="postgres",
                   password=SECRET)
    started = time.monotonic()
    result = project.run()
    elapsed = time.monotonic() - started
    error = assert_one_clear_error(result, "127.0.0.1", "port 1", "Connection refused", "check `host` and `port`")
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert "retrying" not in result.stdout + result.stderr and "gave up after" not in error
    assert SECRET not in result.stdout + result.stderr + project.history()
    assert project.snapshot() == before


@pytest.mark.parametrize(
    "dsn",
    [
        f"host=127.0.0.1 password={SECRET} trailing",  # libpq quotes the token after the password
        f"host=127.0.0.1 password='{SECRET} with space' dbname",
        f"host=127.0.0.1 dbname=postgres password={SECRET} nonsense_key",
    ],
)
def test_invalid_dsn_never_echoes_the_password(project, dsn):
    before = project.snapshot()
    project.recipe("id,name\n3,c\n", dsn=dsn)
    result = project.run()
    assert_one_clear_error(result, "invalid dsn")
    debug = project.run("--debug")
    everything = result.stdout + result.stderr + debug.stdout + debug.stderr + project.history()
    assert SECRET not in everything and "with space" not in everything
    assert project.snapshot() == before
