"""Checkpointed runs into a dataset: every checkpoint publishes new parts, none is overwritten.

Each test runs ``dataloader run`` and compares the dataset with the source as a multiset of rows.
``checkpoint_every`` is given with ``batch_size: 1`` so that it means the same number of rows
whether the engine counts it in rows or in batches.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from dataloader.recipe import Recipe
from filestore_helpers import dataset_dest, read_dataset


def write_csv(path: Path, rows: int) -> pa.Table:
    table = pa.table({"id": list(range(rows)), "name": [f"row {n}" for n in range(rows)]})
    pacsv.write_csv(table, path)
    return table


def rows_of(table: pa.Table) -> Counter:
    return Counter(zip(*(table.column(name).to_pylist() for name in ("id", "name")), strict=True))


def checkpoint_recipe(source: Path, out: Path, every: int, **destination) -> dict:
    return {
        "name": "cp",
        "source": {"type": "filestore", "path": str(source), "format": "csv"},
        "destination": dataset_dest(out, **destination),
        "runtime": {"batch_size": 1, "checkpoint_every": every},
    }


def test_every_checkpoint_publishes_its_own_parts(cli, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", 50)
    out = tmp_path / "out"
    recipe = checkpoint_recipe(tmp_path / "in.csv", out, 7)
    assert Recipe.from_dict(recipe).runtime.checkpoint_every == 7
    result = cli.run(recipe)
    assert result.exit_code == 0, result.output
    assert rows_of(read_dataset(out)) == rows_of(source)
    manifest = json.loads((out / "_dataloader_manifest.json").read_text())
    names = [part["name"] for part in manifest["parts"]]
    assert len(names) == len(set(names)) == 8  # 7 checkpoints of 7 rows, then the last row
    assert sum(part["rows"] for part in manifest["parts"]) == 50
    assert sorted(p.name for p in out.glob("part-*")) == sorted(names)


def test_checkpointed_append_after_an_earlier_run_keeps_both(cli, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", 30)
    out = tmp_path / "out"
    assert cli.run(checkpoint_recipe(tmp_path / "in.csv", out, 4)).exit_code == 0
    second = cli.run(checkpoint_recipe(tmp_path / "in.csv", out, 4), "--full-refresh")
    assert second.exit_code == 0, second.output
    assert rows_of(read_dataset(out)) == rows_of(source) + rows_of(source)


def test_parts_roll_over_within_checkpoints(cli, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", 40)
    out = tmp_path / "out"
    result = cli.run(checkpoint_recipe(tmp_path / "in.csv", out, 9, max_rows_per_file=4))
    assert result.exit_code == 0, result.output
    assert rows_of(read_dataset(out)) == rows_of(source)
    names = [part["name"] for part in json.loads((out / "_dataloader_manifest.json").read_text())["parts"]]
    assert len(names) == len(set(names))
    assert max(p["rows"] for p in json.loads((out / "_dataloader_manifest.json").read_text())["parts"]) <= 4


@pytest.mark.parametrize(
    "bad",
    ["../outside.parquet", "/etc/passwd", "sub/part-x-00000.parquet", "part-..-00000.parquet", "notes.txt"],
)
def test_a_manifest_naming_a_file_outside_the_dataset_is_refused(cli, tmp_path: Path, bad: str) -> None:
    write_csv(tmp_path / "in.csv", 5)
    out = tmp_path / "out"
    assert cli.run(checkpoint_recipe(tmp_path / "in.csv", out, 100)).exit_code == 0
    path = out / "_dataloader_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["parts"].append({"name": bad, "rows": 1, "run_id": "x"})
    path.write_text(json.dumps(manifest))
    before = path.read_text()
    # as a destination (append reads the manifest) ...
    again = cli.run(checkpoint_recipe(tmp_path / "in.csv", out, 100), "--full-refresh")
    assert again.exit_code == 1
    assert "_dataloader_manifest.json" in again.output and repr(bad) in again.output
    assert "Traceback" not in again.output
    assert path.read_text() == before
    # ... and as a source
    reading = cli.run({
        "name": "reader",
        "source": {"type": "filestore", "path": str(out), "format": "parquet"},
        "destination": dataset_dest(tmp_path / "copy"),
    })
    assert reading.exit_code == 1
    assert "_dataloader_manifest.json" in reading.output and repr(bad) in reading.output
    assert not (tmp_path / "copy" / "_dataloader_manifest.json").exists()


def test_a_manifest_listing_a_part_twice_is_refused(cli, tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", 5)
    out = tmp_path / "out"
    assert cli.run(checkpoint_recipe(tmp_path / "in.csv", out, 100)).exit_code == 0
    path = out / "_dataloader_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["parts"].append(dict(manifest["parts"][0]))
    path.write_text(json.dumps(manifest))
    reading = cli.run({
        "name": "reader",
        "source": {"type": "filestore", "path": str(out), "format": "parquet"},
        "destination": dataset_dest(tmp_path / "copy"),
    })
    assert reading.exit_code == 1
    assert "twice" in reading.output and "_dataloader_manifest.json" in reading.output


def test_writing_a_manifest_with_a_repeated_part_is_refused(tmp_path: Path) -> None:
    from dataloader.errors import ConnectorError
    from dataloader_filestore.manifest import Manifest, write_manifest
    from fsspec.implementations.local import LocalFileSystem

    part = {"name": "part-r-00000.parquet", "rows": 1, "run_id": "r"}
    with pytest.raises(ConnectorError, match="twice"):
        write_manifest(LocalFileSystem(), str(tmp_path), Manifest(parts=[part, part]), ".tmp-m.json")
    assert list(tmp_path.iterdir()) == []


class _FailOnce:
    """A transform that raises a transient error once, at the ``at``-th batch of the process."""

    seen = 0
    failed = False

    def __init__(self, config) -> None:
        self.at = config.at

    def apply(self, batch):
        _FailOnce.seen += 1
        if _FailOnce.seen == self.at and not _FailOnce.failed:
            from dataloader.errors import TransformError

            _FailOnce.failed = True
            error = TransformError("the network blinked (test)", step=0)
            error.transient = True  # retried by the engine like a dropped connection
            raise error
        return batch

    __call__ = apply


def test_a_retried_attempt_never_reuses_a_part_name(host, cli, tmp_path: Path) -> None:
    from dataloader.config import ConfigModel
    from dataloader.hookspecs import hookimpl

    class FailConfig(ConfigModel):
        at: int

    class Plugin:
        @hookimpl
        def register_transforms(self, register):
            register("fail_once", _FailOnce, config=FailConfig)

    host.register(Plugin(), name="fail-once", distribution="tests")
    _FailOnce.seen, _FailOnce.failed = 0, False
    source = write_csv(tmp_path / "in.csv", 40)
    out = tmp_path / "out"
    recipe = checkpoint_recipe(tmp_path / "in.csv", out, 6)
    recipe["transform"] = {"steps": [{"type": "fail_once", "at": 21}]}
    recipe["runtime"]["retries"] = {"max_attempts": 3, "initial_delay": 0, "max_delay": 0}
    result = cli.run(recipe)
    assert result.exit_code == 0, result.output
    assert _FailOnce.failed
    assert rows_of(read_dataset(out)) == rows_of(source)
    names = [part["name"] for part in json.loads((out / "_dataloader_manifest.json").read_text())["parts"]]
    assert len(names) == len(set(names))
    assert sorted(p.name for p in out.glob("part-*")) == sorted(names)


def _connector_with_flaky_manifest_rename(out: Path, monkeypatch, *, rename_first: bool):
    """A destination whose file system raises on the manifest's rename, after or instead of doing it."""
    from dataloader.connector import RunContext
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    connector = FilestoreConnector(FilestoreConfig.model_validate(dataset_dest(out)))
    connector.context = RunContext(recipe_name="lost", run_id="lost-reply-run", role="destination")
    connector.open()
    real_mv = connector.fs.mv

    def mv(source, target, **kwargs):
        if target.endswith("_dataloader_manifest.json"):
            if rename_first:
                real_mv(source, target, **kwargs)
            raise ConnectionResetError("the reply was lost")
        return real_mv(source, target, **kwargs)

    monkeypatch.setattr(connector.fs, "mv", mv)  # fsspec shares one LocalFileSystem: undone after the test
    return connector


@pytest.mark.parametrize("renamed", [True, False], ids=["reply-lost-after-rename", "rename-failed"])
def test_a_manifest_rename_with_an_unknown_outcome_is_resolved_by_reading_it_back(
    host, tmp_path: Path, monkeypatch, renamed
) -> None:
    import pyarrow as pa
    from dataloader.batch import Batch
    from dataloader.errors import ConnectorError
    from dataloader.state import State

    out = tmp_path / "out"
    connector = _connector_with_flaky_manifest_rename(out, monkeypatch, rename_first=renamed)
    batch = Batch.from_arrow(pa.table({"id": [1, 2, 3]}))
    connector.begin(batch.schema, "append", State())
    connector.write_batch(batch, State())
    if renamed:
        connector.commit(State())  # the manifest is ours: the commit happened
        assert read_dataset(out).column("id").to_pylist() == [1, 2, 3]
        assert connector.load_committed_state("lost")["run_id"] == "lost-reply-run"
    else:
        with pytest.raises(ConnectorError, match="cannot commit"):
            connector.commit(State())
        connector.abort()
        assert not (out / "_dataloader_manifest.json").exists()
        assert not list(out.glob("part-*"))
    connector.close()
