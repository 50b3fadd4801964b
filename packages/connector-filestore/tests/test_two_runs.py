"""Two runs of one recipe into one dataset, through ``dataloader run``: the second fails at once,
naming the first; a lock left by a killed run is taken over. The second run uses its own state
folder (another machine, another working directory), so only the dataset lock can stop it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from filestore_helpers import dataset_dest, read_dataset, snapshot
from lock_helpers import LockHolder


def recipe(tmp_path: Path) -> dict:
    source = tmp_path / "in.csv"
    if not source.exists():
        source.write_text("id,name\n" + "".join(f"{n},n{n}\n" for n in range(50)))
    return {
        "name": "twice",
        "source": {"type": "filestore", "path": str(source), "format": "csv"},
        "destination": dataset_dest(tmp_path / "out"),
    }


def test_a_second_run_fails_at_once_naming_the_running_one(cli, tmp_path: Path) -> None:
    assert cli.run(recipe(tmp_path)).exit_code == 0
    before, state_before = snapshot(tmp_path / "out"), cli.state("twice")
    holder = LockHolder(recipe(tmp_path)["destination"], "twice")
    try:
        started = time.monotonic()
        second = cli.run(recipe(tmp_path))
        elapsed = time.monotonic() - started
    finally:
        holder.finish()
    assert second.exit_code == 1, second.output
    assert "already running" in second.output and "the-other-run" in second.output
    assert f"pid {holder.process.pid}" in second.output
    assert "_dataloader/locks/twice.json" in second.output
    assert "Traceback" not in second.output
    assert elapsed < 10
    after = snapshot(tmp_path / "out")
    assert {k: v for k, v in after.items() if "_dataloader/locks" not in k} == before
    assert cli.state("twice") == state_before
    # once the first run is done, the recipe runs again
    assert cli.run(recipe(tmp_path)).exit_code == 0
    assert read_dataset(tmp_path / "out").num_rows == 100


def test_the_lock_of_a_killed_run_is_taken_over(cli, tmp_path: Path) -> None:
    holder = LockHolder(recipe(tmp_path)["destination"], "twice", run_id="killed-run")
    holder.kill()  # SIGKILL: the lock file stays behind, naming a process that is gone
    lock = tmp_path / "out" / "_dataloader" / "locks" / "twice.json"
    assert "killed-run" in lock.read_text()
    result = cli.run(recipe(tmp_path))
    assert result.exit_code == 0, result.output
    assert read_dataset(tmp_path / "out").num_rows == 50
    assert not lock.exists()  # released at the end of the run


def test_the_lock_is_released_when_a_run_fails(cli, tmp_path: Path) -> None:
    bad = recipe(tmp_path)
    (tmp_path / "bad.csv").write_text("id,id\n1,2\n")
    bad["source"]["path"] = str(tmp_path / "bad.csv")
    assert cli.run(bad).exit_code == 1
    assert not (tmp_path / "out" / "_dataloader" / "locks" / "twice.json").exists()
    assert cli.run(recipe(tmp_path)).exit_code == 0
    assert json.loads((tmp_path / "out" / "_dataloader_manifest.json").read_text())["parts"]
