"""Source fingerprints (for resume): the files a source would read, with size, mtime and ETag."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dataloader.connector import RunContext
from dataloader.state import State


def source(config: dict):
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    connector = FilestoreConnector(FilestoreConfig.model_validate(config))
    connector.context = RunContext(recipe_name="fp", run_id="r", role="source")
    connector.open()
    return connector


def test_fingerprint_is_stable_small_and_changes_with_content(host, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id\n1\n2\n")
    (folder / "b.csv").write_text("id\n3\n")
    connector = source({"type": "filestore", "path": str(folder), "format": "csv"})
    first = connector.fingerprint(State())
    assert connector.fingerprint(State()) == first  # nothing changed: the same
    assert json.loads(json.dumps(first)) == first and len(json.dumps(first)) < 1024
    assert [entry["path"].rsplit("/", 1)[-1] for entry in first["entries"]] == ["a.csv", "b.csv"]
    stat = os.stat(folder / "a.csv")
    (folder / "a.csv").write_text("id\n1\n9\n")  # same name, same size, new content
    os.utime(folder / "a.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert connector.fingerprint(State()) != first
    (folder / "c.csv").write_text("id\n4\n")
    assert connector.fingerprint(State())["files"] == 3


def test_fingerprint_of_many_files_stays_small(host, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(300):
        (folder / f"f{n:04d}.csv").write_text(f"id\n{n}\n")
    fingerprint = source({"type": "filestore", "path": str(folder), "format": "csv"}).fingerprint(State())
    assert fingerprint["files"] == 300 and "entries" not in fingerprint
    assert len(json.dumps(fingerprint)) < 200


def test_incremental_fingerprint_lists_only_the_files_a_run_would_read(host, tmp_path: Path) -> None:
    from dataloader_filestore.source import WATERMARK_KEY, file_mark
    from fsspec.implementations.local import LocalFileSystem

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "old.csv").write_text("id\n1\n")
    (folder / "new.csv").write_text("id\n2\n")
    connector = source({
        "type": "filestore", "path": str(folder), "format": "csv", "incremental": {"strategy": "modified_time"},
    })
    fs = LocalFileSystem()
    old = fs.info(str(folder / "old.csv"))
    state = State(watermarks={WATERMARK_KEY: {old["name"]: file_mark(fs, old)}})
    fingerprint = connector.fingerprint(state)
    assert [entry["path"].rsplit("/", 1)[-1] for entry in fingerprint["entries"]] == ["new.csv"]
