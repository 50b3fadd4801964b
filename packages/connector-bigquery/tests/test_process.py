"""``dataloader run`` killed with SIGKILL around the BigQuery commit, then run again.

CSV → BigQuery through the real CLI in a child process, with ``DATALOADER_FAULT_KILL_AT`` naming
the fault point where the process kills itself: before the publishing transaction, after
BigQuery committed but before the engine heard back (``commit_reply``), and after the commit but
before the local state was saved. A re-run finds the commit record in ``_dataloader_state`` and
leaves every row there exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import Warehouse

pytest.importorskip("dataloader_filestore")


def _cli(recipe: Path, state: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
    if kill_at:
        env["DATALOADER_FAULT_KILL_AT"] = kill_at
    command = [sys.executable, "-c", "from dataloader.cli import main; main()", "run", str(recipe), "--state-dir", str(state)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=recipe.parent)


# The contract suite kills an append at all three points; here the CLI is killed in the worst one
# (BigQuery committed, the engine never heard) for both modes, and after the commit for merge.
@pytest.mark.parametrize(("mode", "kill_at"), [("append", "commit_reply"), ("merge", "commit_reply"), ("merge", "after_commit")])
def test_csv_to_bigquery_killed_around_commit_then_rerun_holds_each_row_once(
    warehouse: Warehouse, tmp_path: Path, kill_at: str, mode: str
) -> None:
    csv = tmp_path / "in" / "rows.csv"
    csv.parent.mkdir()
    csv.write_text("id,name\n" + "".join(f"{i},name {i}\n" for i in range(1, 8)))
    destination = {**warehouse.keys(table="t"), "write_mode": mode}
    if mode == "merge":
        destination["merge_keys"] = ["id"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "killed",
        "source": {"type": "filestore", "path": str(csv.parent), "format": "csv", "incremental": {"strategy": "modified_time"}},
        "destination": destination,
        "runtime": {"batch_size": 3, "retries": {"max_attempts": 1}},
    }))
    killed = _cli(recipe, tmp_path / "state", kill_at)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    expected_after_kill = 0 if kill_at == "before_commit" else 7
    assert (warehouse.count("t") if warehouse.exists("t") else 0) == expected_after_kill
    again = _cli(recipe, tmp_path / "state", None)
    assert again.returncode == 0, again.stdout + again.stderr
    assert warehouse.rows("SELECT id, COUNT(*) FROM `{ds}.t` GROUP BY id ORDER BY id") == [(i, 1) for i in range(1, 8)]
