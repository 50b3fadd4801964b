"""A run killed in the middle of writing (SIGKILL, no cleanup at all) leaves the dataset as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from filestore_helpers import CUSTOMERS_CSV, dataset_dest, read_dataset

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# A child process whose transform kills it, without any cleanup, once parts are on disk.
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from dataloader import run_recipe
    from dataloader.config import ConfigModel
    from dataloader.hookspecs import hookimpl
    from dataloader.plugins import PluginHost, use_host
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend
    from dataloader.transforms.base import Transform

    class KillConfig(ConfigModel):
        after_batches: int

    class KillAfter(Transform):
        seen = 0

        def apply(self, batch):
            KillAfter.seen += 1
            if KillAfter.seen > self.config.after_batches:
                os.kill(os.getpid(), signal.SIGKILL)
            return batch

    class Plugin:
        @hookimpl
        def register_transforms(self, register):
            register("kill_after", KillAfter, config=KillConfig)

    host = PluginHost()
    host.register(Plugin(), name="kill", distribution="tests")
    with use_host(host):
        recipe = Recipe.from_dict(json.loads(sys.argv[1]))
        run_recipe(recipe, LocalStateBackend(sys.argv[2]), history=False)
    """
)


def test_killed_overwrite_leaves_the_dataset_and_the_next_run_tidies_up(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = {"type": "filestore", "path": str(CUSTOMERS_CSV), "format": "csv"}
    first = run(source, dataset_dest(out), name="crash")
    before = (out / "_dataloader_manifest.json").read_text()

    recipe = {
        "name": "crash",
        "source": source,
        "transform": {"steps": [{"type": "kill_after", "after_batches": 3}]},
        "destination": dataset_dest(out, write_mode="overwrite", max_rows_per_file=20),
        "runtime": {"batch_size": 20},
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(recipe), str(tmp_path / "state")],
        capture_output=True, text=True, env={**os.environ, "DATALOADER_HISTORY": "off"}, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    leftovers = sorted(p.name for p in out.glob(".tmp-*"))
    assert leftovers, "the killed run should have had parts on disk"
    assert (out / "_dataloader_manifest.json").read_text() == before
    assert read_dataset(out).num_rows == 200

    # The next run sees the interrupted one, restarts from the committed state, and cleans up.
    again = run(source, dataset_dest(out, write_mode="overwrite"), name="crash")
    assert again.status == "success"
    assert sorted(p.name for p in out.iterdir()) == ["_dataloader_manifest.json", f"part-{again.run_id}-00000.parquet"]
    assert json.loads((out / "_dataloader_manifest.json").read_text())["states"]["crash"]["run_id"] == again.run_id
    assert first.run_id != again.run_id
