"""Schema versions in the run history and the local mirror, against real DuckDB files (docs/schema.md)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from dataloader.history import RunHistory
from test_schema_policy import _cli, _recipe, _source


def _mirror(tmp_path: Path) -> Path:
    return tmp_path / "history" / "schema" / "people.json"


def _two_versions(tmp_path: Path) -> str:
    recipe = _recipe(tmp_path / "r.yaml", {"evolution": {"mode": "auto"}})
    _source("SELECT * FROM (VALUES (1::INTEGER, 'a')) v(id, name)")
    assert _cli("run", recipe)[0] == 0
    _source("SELECT * FROM (VALUES (2::INTEGER, 'b', 'b@x')) v(id, name, email)")
    assert _cli("run", recipe)[0] == 0
    return recipe


def test_run_history_records_the_changes_a_run_applied(tmp_path: Path) -> None:
    _two_versions(tmp_path)
    first, second = reversed(RunHistory(tmp_path / "history" / "runs.db").list())
    assert first["schema_changes"] == []
    assert [(c["kind"], c["column"], c["action"]) for c in second["schema_changes"]] == [("added", "email", "apply")]
    code, out = _cli("runs", "--json")
    assert code == 0 and "email" in out


def test_mirror_is_written_privately_and_shown_when_the_destination_is_lost(tmp_path: Path) -> None:
    recipe = _two_versions(tmp_path)
    mirror = _mirror(tmp_path)
    assert [v["version"] for v in json.loads(mirror.read_text())] == [1, 2]
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o600
    assert not [p for p in mirror.parent.iterdir() if p.name.endswith(".tmp")]
    code, out = _cli("schema", "history", recipe)
    assert code == 0 and "local mirror" not in out
    assert [line.split()[0] for line in out.splitlines()] == ["v1", "v2"]
    os.remove(tmp_path / "dst.duckdb")
    code, out = _cli("schema", "history", recipe)
    assert code == 0
    assert "showing the local mirror" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("v")] == ["v1", "v2"]
    mirror.unlink()
    code, out = _cli("schema", "history", recipe)
    assert code == 0 and "no schema versions recorded" in out


def test_a_failed_run_writes_nothing_to_the_mirror(tmp_path: Path) -> None:
    recipe = _two_versions(tmp_path)
    before = _mirror(tmp_path).read_bytes()
    _source("SELECT * FROM (VALUES ('x', 'c', 'c@x')) v(id, name, email)")  # int -> text is refused
    assert _cli("run", recipe)[0] == 1
    assert _mirror(tmp_path).read_bytes() == before
    failed = RunHistory(tmp_path / "history" / "runs.db").list()[0]
    assert failed["status"] == "failed" and failed["schema_changes"] == []


def test_an_unreachable_destination_shows_the_mirror_with_a_note(tmp_path: Path) -> None:
    recipe = _two_versions(tmp_path)
    os.remove(tmp_path / "dst.duckdb")
    (tmp_path / "dst.duckdb").mkdir()  # a directory: DuckDB cannot open it
    code, out = _cli("schema", "history", recipe)
    assert code == 0
    assert "could not be read; showing the local mirror" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("v")] == ["v1", "v2"]
    _mirror(tmp_path).unlink()
    code, out = _cli("schema", "history", recipe)
    assert code == 1 and out.startswith("error:")
