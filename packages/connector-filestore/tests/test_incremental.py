"""``incremental: {strategy: modified_time}``: only files that are new or changed are read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dataloader.errors import DataLoaderError, RecipeError
from dataloader.state import LocalStateBackend
from filestore_helpers import dataset_dest, read_dataset


def write(path: Path, rows: list[int], mtime: int) -> None:
    path.write_text("id\n" + "".join(f"{i}\n" for i in rows), encoding="utf-8")
    os.utime(path, (mtime, mtime))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def source(inbox: Path) -> dict:
    return {"type": "filestore", "path": f"{inbox}/*.csv", "format": "csv", "incremental": {"strategy": "modified_time"}}


def test_only_new_and_changed_files_are_read(run, inbox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(inbox / "a.csv", [1, 2], 1_700_000_000)
    write(inbox / "b.csv", [3], 1_700_000_000)
    assert run(source(inbox), dataset_dest(out)).rows_read == 3
    assert run(source(inbox), dataset_dest(out)).rows_read == 0

    write(inbox / "c.csv", [4, 5], 1_700_000_100)  # new
    write(inbox / "b.csv", [3, 30], 1_700_000_200)  # changed
    third = run(source(inbox), dataset_dest(out))
    assert third.rows_read == 4
    assert sorted(read_dataset(out).column("id").to_pylist()) == [1, 2, 3, 3, 4, 5, 30]


def test_marks_are_kept_per_file_in_the_state(run, inbox: Path, tmp_path: Path) -> None:
    write(inbox / "a.csv", [1], 1_700_000_000)
    run(source(inbox), dataset_dest(tmp_path / "out"))
    state = LocalStateBackend(tmp_path / "state").load("t")
    marks = state["watermarks"]["files"]
    assert list(marks) == [str(inbox / "a.csv")]
    assert marks[str(inbox / "a.csv")] == {"size": len("id\n1\n"), "mtime": 1_700_000_000.0, "etag": None}


def test_marks_advance_only_when_the_destination_commits(run, inbox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(inbox / "a.csv", [1], 1_700_000_000)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the dataset directory should be", encoding="utf-8")
    with pytest.raises(DataLoaderError):
        run(source(inbox), dataset_dest(blocker))
    assert run(source(inbox), dataset_dest(out)).rows_read == 1


def test_cursor_strategy_is_refused_for_files(run, inbox: Path) -> None:
    section = {**source(inbox), "incremental": {"strategy": "cursor", "cursor_column": "id"}}
    with pytest.raises(RecipeError, match="does not support incremental strategy 'cursor'"):
        run.recipe(section, dataset_dest("out"))
