"""SIGKILL at seeded points of a checkpointed ``dataloader run`` (CSV -> Parquet dataset), then run
again until it succeeds: the dataset equals the source exactly, as a multiset, every time."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from filestore_helpers import dataset_dest, read_dataset, snapshot

CLI = "import sys; from dataloader.cli import main; main(sys.argv[1:])"
ROWS = 60


def run_cli(recipe_path: Path, state_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, "run", str(recipe_path), "--state-dir", str(state_dir)],
        capture_output=True, text=True, env={**os.environ, "DATALOADER_HISTORY": "off", **env}, timeout=120,
    )


@pytest.fixture
def setup(tmp_path: Path):
    table = pa.table({"id": list(range(ROWS)), "name": [f"n{n}" for n in range(ROWS)]})
    pacsv.write_csv(table, tmp_path / "in.csv")
    expected = Counter(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))

    def prepare(name: str) -> tuple[Path, Path, Path]:
        work = tmp_path / name
        work.mkdir()
        recipe = {
            "name": "killed",
            "source": {"type": "filestore", "path": str(tmp_path / "in.csv"), "format": "csv"},
            "destination": dataset_dest(work / "out", max_rows_per_file=7),
            "runtime": {"batch_size": 1, "checkpoint_every": 9},
        }
        (work / "recipe.yaml").write_text(json.dumps(recipe))
        return work / "recipe.yaml", work / "state", work / "out"

    return prepare, expected


def test_sigkill_at_seeded_points_of_a_checkpointed_run_loses_and_duplicates_nothing(setup, tmp_path: Path) -> None:
    prepare, expected = setup
    recipe, state, out = prepare("count")
    log = tmp_path / "points.log"
    counted = run_cli(recipe, state, DATALOADER_FAULT_LOG=str(log))
    assert counted.returncode == 0, counted.stderr
    points = len(log.read_text().splitlines())
    assert points > 100
    chosen = sorted(random.Random(20261201).sample(range(1, points + 1), 6))
    for number in chosen:
        recipe, state, out = prepare(f"kill-{number}")
        killed = run_cli(recipe, state, DATALOADER_FAULT_AT=str(number))
        assert killed.returncode == -9, (number, killed.stderr[-2000:])
        for _ in range(3):
            again = run_cli(recipe, state)
            if again.returncode == 0:
                break
        assert again.returncode == 0, (number, again.stderr[-2000:])
        table = read_dataset(out)
        rows = Counter(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))
        assert rows == expected, f"kill point {number}: {sorted((rows - expected).items())[:5]} extra, {sorted((expected - rows).items())[:5]} missing"
        names = [p["name"] for p in json.loads((out / "_dataloader_manifest.json").read_text())["parts"]]
        assert len(names) == len(set(names))


def test_resuming_after_the_source_file_changed_never_skips_new_rows(setup, tmp_path: Path) -> None:
    prepare, _ = setup
    recipe, state, out = prepare("changed")
    log = tmp_path / "changed-points.log"
    counted = run_cli(recipe, state, DATALOADER_FAULT_LOG=str(log))
    assert counted.returncode == 0, counted.stderr
    names = [line.split()[1] for line in log.read_text().splitlines()]
    after_first_checkpoint = names.index("after_checkpoint") + 1  # 1-based number of that point
    recipe, state, out = prepare("changed-run")
    killed = run_cli(recipe, state, DATALOADER_FAULT_AT=str(after_first_checkpoint + 2))
    assert killed.returncode == -9, killed.stderr[-2000:]
    def data(path: Path) -> dict[str, bytes]:  # the killed run's lock is left behind, then taken over
        return {name: blob for name, blob in snapshot(path).items() if not name.startswith("_dataloader/")}

    before = data(out)
    assert before, "the first checkpoint should have been published"
    # The source is rewritten under the same name: the rows a resume would skip are other rows now.
    source = tmp_path / "in.csv"
    stat = source.stat()
    source.write_text("id,name\n" + "".join(f"{n},changed{n}\n" for n in range(ROWS)))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    resumed = run_cli(recipe, state)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "source changed" in resumed.stderr and "--full-refresh" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert data(out) == before
