"""CSV -> Snowflake merge killed with SIGKILL at the moments that matter; a re-run leaves every row
exactly once (the reliability suite's method, against the emulator).

The loader runs as a real ``dataloader run`` process with ``DATALOADER_FAULT_AT=N``: it kills
itself at its N-th crash point (a batch read or written, just before or after the commit, halfway
through the state file write).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import query

ROWS = 120
BATCH = 40
#: The crash points to kill at, by name: the first of each kind in the run (a kill before the commit
#: stands for every earlier point: nothing is visible before it).
KINDS = ("before_commit", "after_commit", "state_write")


def _bin() -> str:
    script = Path(sys.executable).parent / "dataloader"
    found = str(script) if script.exists() else shutil.which("dataloader")
    if not found:
        pytest.fail("the dataloader script is not installed in this environment")
    return found


def _write_csv(path: Path) -> list[tuple[int, str, int]]:
    rows = [(i, f"name {i} é,\"q\"", i // 7) for i in range(1, ROWS + 1)]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "updated"])
        writer.writerows(rows)
    return rows


def _recipe(work: Path, csv_path: Path, section: dict[str, Any]) -> Path:
    recipe = {
        # One recipe per attempt: the commit record in the schema is per recipe name.
        "name": f"sigkill_merge_{work.name.replace('-', '_')}",
        "source": {"type": "filestore", "path": str(csv_path), "format": "csv", "incremental": {"strategy": "modified_time"}},
        "transform": {"steps": [{"type": "cast", "columns": {"id": "int", "updated": "int"}}]},
        "destination": {**section, "write_mode": "merge", "merge_keys": ["id"]},
        "runtime": {"batch_size": BATCH, "retries": {"max_attempts": 1}},
    }
    path = work / "recipe.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    return path


def _run(work: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
    return subprocess.run(
        [_bin(), "run", str(work / "recipe.yaml"), "--state-dir", str(work / "state"), *extra],
        capture_output=True, text=True, timeout=300, cwd=work,
        env={**inherited, "DATALOADER_HISTORY": str(work / "runs.db"), **(env or {})},
    )


def test_sigkill_during_a_merge_loses_and_duplicates_nothing(section, unique, sf, tmp_path):
    csv_path = tmp_path / "source.csv"
    expected = Counter(_write_csv(csv_path))
    probe = tmp_path / "probe"
    probe.mkdir()
    table = unique("sigkill")
    _recipe(probe, csv_path, section(table=f'"{table}_probe"'))
    log = probe / "points.log"
    clean = _run(probe, env={"DATALOADER_FAULT_LOG": str(log)})
    assert clean.returncode == 0, clean.stderr
    points = log.read_text().splitlines()
    chosen = {kind: next(i for i, p in enumerate(points, 1) if p.endswith(kind)) for kind in KINDS}
    for number, (kind, at) in enumerate(chosen.items()):
        work = tmp_path / f"kill-{kind}"
        work.mkdir()
        target = f"{table}_{number}"
        _recipe(work, csv_path, section(table=f'"{target}"'))
        killed = _run(work, env={"DATALOADER_FAULT_AT": str(at)})
        assert killed.returncode == -9, f"{kind}: expected SIGKILL, got {killed.returncode}: {killed.stderr}"
        again = _run(work, *(["--resume"] if number % 2 else []))
        assert again.returncode == 0, f"after a kill at {kind}: {again.stderr}"
        got = Counter(query(sf, f'SELECT "id", "name", "updated" FROM "{target}"'))
        missing, extra = expected - got, got - expected
        assert not missing and not extra, f"after a kill at {kind}: {sum(missing.values())} lost, {sum(extra.values())} duplicated"
