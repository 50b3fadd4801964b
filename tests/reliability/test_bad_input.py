"""Bad input through the installed CLI: one clear message, the right exit code, nothing lost.

Every case starts from a destination that already holds a committed run and a saved state, runs
``dataloader run`` on input that cannot load, and checks: exit code 1, one ``error:`` message that
names what is wrong and where, no traceback, the destination's rows and the state file unchanged.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("dataloader_filestore")
pytest.importorskip("dataloader_duckdb")

GOOD_CSV = "id,name,amount\n1,ada,1.5\n2,grace,2.5\n"


class Project:
    def __init__(self, root: Path, dataloader_bin: str) -> None:
        self.root, self.bin = root, dataloader_bin
        self.data = root / "data"
        self.data.mkdir()
        self.database = root / "warehouse.duckdb"

    def recipe(self, source: dict[str, Any], **extra: Any) -> Path:
        recipe = {
            "name": "bad_input",
            "source": source,
            "destination": {"type": "duckdb", "database": str(self.database), "table": "main.target", "write_mode": "append"},
            "runtime": {"retries": {"max_attempts": 1}},
            **extra,
        }
        path = self.root / "recipe.yaml"
        path.write_text(json.dumps(recipe), encoding="utf-8")
        return path

    def csv_source(self, name: str, **options: Any) -> dict[str, Any]:
        source: dict[str, Any] = {"type": "filestore", "path": str(self.data / name), "format": "csv"}
        if options:
            source["options"] = options
        return source

    def run(self, *extra: str, preexec: Any = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATALOADER_HISTORY": str(self.root / "runs.db")}
        return subprocess.run(
            [self.bin, "run", str(self.root / "recipe.yaml"), "--state-dir", str(self.root / "state"), *extra],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.root,
            env=env,
            preexec_fn=preexec,
        )

    def rows(self) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute("select * from main.target order by all").fetchall()

    def state_text(self) -> str:
        return (self.root / "state" / "bad_input.json").read_text()


@pytest.fixture
def project(tmp_path: Path, dataloader_bin: str) -> Project:
    """A project whose first run loaded two rows and saved its state."""
    p = Project(tmp_path, dataloader_bin)
    (p.data / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    p.recipe(p.csv_source("good.csv"))
    first = p.run()
    assert first.returncode == 0, first.stderr
    return p


def assert_clean_failure(project: Project, result: subprocess.CompletedProcess[str], *needles: str) -> None:
    before_rows, before_state = project.before
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors, result.stderr
    text = "\n".join(errors)
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    assert project.rows() == before_rows, "the destination changed"
    assert project.state_text() == before_state, "the state changed"


def snapshot(project: Project) -> None:
    project.before = (project.rows(), project.state_text())  # type: ignore[attr-defined]


def test_wrong_number_of_fields_names_file_and_row(project: Project) -> None:
    (project.data / "bad.csv").write_text("id,name,amount\n1,a,1\n2,b,2,extra\n", encoding="utf-8")
    project.recipe(project.csv_source("bad.csv"))
    snapshot(project)
    assert_clean_failure(project, project.run(), "bad.csv", "row 2 (line 3)")


def test_bad_quoting_names_the_file(project: Project) -> None:
    (project.data / "quotes.csv").write_text('id,name,amount\n1,"unclosed,1\n2,b,2\n', encoding="utf-8")
    project.recipe(project.csv_source("quotes.csv"))
    snapshot(project)
    assert_clean_failure(project, project.run(), "quotes.csv")


def test_value_that_fails_a_cast_names_column_row_and_value(project: Project) -> None:
    (project.data / "cast.csv").write_text("id,name,amount\n1,a,1\n2,b,lots\n", encoding="utf-8")
    project.recipe(project.csv_source("cast.csv"), transform={"steps": [{"type": "cast", "columns": {"amount": "float"}}]})
    snapshot(project)
    assert_clean_failure(project, project.run(), "transform.steps.0 (cast)", "'amount'", "row 2", "'lots'")


def test_invalid_utf8_names_the_file(project: Project) -> None:
    (project.data / "latin.csv").write_bytes(b"id,name,amount\n1,caf\xe9,1\n")
    project.recipe(project.csv_source("latin.csv", encoding="utf-8"))
    snapshot(project)
    assert_clean_failure(project, project.run(), "latin.csv")


def test_empty_file_loads_nothing_and_says_so(project: Project) -> None:
    (project.data / "empty.csv").write_bytes(b"")
    project.recipe(project.csv_source("empty.csv"))
    snapshot(project)
    result = project.run()
    # An empty file is not an error of the data; it must not change anything either way.
    if result.returncode == 0:
        assert "0 rows read" in result.stdout or "0 rows" in result.stdout
        assert project.rows() == project.before[0]  # type: ignore[attr-defined]
    else:
        assert_clean_failure(project, result, "empty.csv")


def test_a_single_50_mb_line_loads(project: Project) -> None:
    big = "x" * (50 * 1024 * 1024)
    (project.data / "wide.csv").write_text(f"id,name,amount\n3,{big},3.5\n", encoding="utf-8")
    project.recipe(project.csv_source("wide.csv"))
    result = project.run()
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(project.database), read_only=True) as con:
        assert con.execute("select length(name) from main.target where id = 3").fetchall() == [(len(big),)]


def test_incompatible_destination_column_type_is_refused_naming_the_column(project: Project) -> None:
    (project.data / "typed.csv").write_text("id,name,amount\n4,d,not-a-number\n", encoding="utf-8")
    project.recipe(project.csv_source("typed.csv"))
    snapshot(project)
    assert_clean_failure(project, project.run(), "amount")


def test_full_disk_on_the_state_directory_fails_before_writing(project: Project) -> None:
    (project.data / "more.csv").write_text("id,name,amount\n5,e,5\n", encoding="utf-8")
    project.recipe(project.csv_source("more.csv"))
    snapshot(project)
    limit = 64  # bytes: every state write fails as if the disk were full

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    assert_clean_failure(project, project.run(preexec=small_disk), "state", "previous state is unchanged")


def test_unreachable_postgres_is_one_message(project: Project) -> None:
    pytest.importorskip("dataloader_postgres")
    project.recipe({"type": "postgres", "host": "127.0.0.1", "port": 1, "database": "x", "user": "postgres", "password": "s3cret-value", "table": "public.t"})
    snapshot(project)
    result = project.run()
    assert_clean_failure(project, result, "127.0.0.1")
    assert "s3cret-value" not in result.stderr
