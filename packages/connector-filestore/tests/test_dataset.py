"""The dataset directory a filestore destination writes: parts, manifest, modes, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataloader.errors import DataLoaderError, RecipeError
from dataloader.plugins import use_host
from dataloader.testing import MEMORY_TABLES, plugin_host
from filestore_helpers import CUSTOMERS_CSV, dataset_dest, read_dataset

SOURCE = {"type": "filestore", "path": str(CUSTOMERS_CSV), "format": "csv"}


def manifest(path: Path) -> dict:
    return json.loads((path / "_dataloader_manifest.json").read_text())


def files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_append_twice_doubles_the_rows(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(SOURCE, dataset_dest(out, write_mode="append"))
    second = run(SOURCE, dataset_dest(out, write_mode="append"))
    table = read_dataset(out)
    assert table.num_rows == 400
    assert sorted(table.column("id").to_pylist()) == sorted(list(range(1, 201)) * 2)
    names = [part["name"] for part in manifest(out)["parts"]]
    assert names == [f"part-{first.run_id}-00000.parquet", f"part-{second.run_id}-00000.parquet"]


def test_overwrite_twice_keeps_one_copy_and_deletes_old_parts(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(SOURCE, dataset_dest(out, write_mode="overwrite"))
    second = run(SOURCE, dataset_dest(out, write_mode="overwrite"))
    assert read_dataset(out).num_rows == 200
    assert files(out) == ["_dataloader_manifest.json", f"part-{second.run_id}-00000.parquet"]


def test_parts_roll_over_after_max_rows_per_file(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(SOURCE, dataset_dest(out, max_rows_per_file=75), batch_size=40)
    parts = manifest(out)["parts"]
    assert [p["rows"] for p in parts] == [75, 75, 50]
    assert [p["name"] for p in parts] == [f"part-{result.run_id}-{n:05d}.parquet" for n in range(3)]
    assert read_dataset(out).num_rows == 200


def test_failed_run_leaves_dataset_and_directory_as_they_were(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with use_host(plugin_host()):
        from filestore_helpers import Runner

        run = Runner(tmp_path)
        run(SOURCE, dataset_dest(out, write_mode="append"))
        before_files, before_manifest = files(out), manifest(out)
        MEMORY_TABLES["failing"] = pa.table({"id": list(range(100))})
        failing = {"type": "contract_memory", "table": "failing", "fail_after_batches": 3}
        for mode in ("append", "overwrite"):
            with pytest.raises(DataLoaderError, match="failed on purpose"):
                run(failing, dataset_dest(out, write_mode=mode, max_rows_per_file=2))
            assert files(out) == before_files
            assert manifest(out) == before_manifest
    MEMORY_TABLES.clear()


def test_source_reads_only_the_parts_the_manifest_lists(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(SOURCE, dataset_dest(out))
    # Leftovers of a run that never committed: a temporary part and a renamed but unlisted one.
    pq.write_table(pa.table({"id": [999]}), out / ".tmp-dead-00000.parquet")
    pq.write_table(pa.table({"id": [998]}), out / "part-dead-00000.parquet")
    copy = tmp_path / "copy"
    result = run({"type": "filestore", "path": str(out), "format": "parquet"}, dataset_dest(copy), name="copy")
    assert result.rows_read == 200
    assert 999 not in read_dataset(copy).column("id").to_pylist()


def test_committed_state_is_stored_in_the_manifest(run, host, tmp_path: Path) -> None:
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    out = tmp_path / "out"
    result = run(SOURCE, dataset_dest(out), name="customers")
    connector = FilestoreConnector(FilestoreConfig.model_validate(dataset_dest(out)))
    connector.open()
    found = connector.load_committed_state("customers")
    assert found["run_id"] == result.run_id
    assert found["state"]["metadata"]["last_run_id"] == result.run_id
    assert connector.load_committed_state("other") is None


def test_load_committed_state_without_a_dataset_is_none(host, tmp_path: Path) -> None:
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    connector = FilestoreConnector(FilestoreConfig.model_validate(dataset_dest(tmp_path / "none")))
    connector.open()
    assert connector.load_committed_state("x") is None


def test_merge_is_refused_at_validate_time_listing_the_supported_modes(run) -> None:
    with pytest.raises(RecipeError) as caught:
        run.recipe(SOURCE, dataset_dest("out", write_mode="merge", merge_keys=["id"]))
    assert "filestore does not support write mode 'merge'" in str(caught.value)
    assert "append, overwrite" in str(caught.value)


def test_destination_path_that_is_a_file_is_refused(run, tmp_path: Path) -> None:
    target = tmp_path / "file.parquet"
    target.write_bytes(b"not a directory")
    with pytest.raises(DataLoaderError, match="is a file; a filestore destination is a directory"):
        run(SOURCE, dataset_dest(target))


def test_writing_another_format_into_a_dataset_is_refused(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(SOURCE, dataset_dest(out))
    with pytest.raises(DataLoaderError, match="holds a parquet dataset"):
        run(SOURCE, dataset_dest(out, "csv"))


def test_empty_source_with_overwrite_empties_the_dataset(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(SOURCE, dataset_dest(out))
    empty = tmp_path / "empty.csv"
    empty.write_text("id,name\n", encoding="utf-8")
    run({"type": "filestore", "path": str(empty), "format": "csv"}, dataset_dest(out, write_mode="overwrite"))
    assert manifest(out)["parts"] == []
    assert files(out) == ["_dataloader_manifest.json"]


def test_a_dataset_source_knows_its_row_count_from_the_manifest(run, host, tmp_path: Path) -> None:
    from dataloader.state import State
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    out = tmp_path / "out"
    run(SOURCE, dataset_dest(out, max_rows_per_file=64))
    connector = FilestoreConnector(FilestoreConfig.model_validate(dataset_dest(out)))
    connector.open()
    assert connector.estimate_total_records(State()) == 200


def test_a_run_that_would_overwrite_a_concurrent_commit_publishes_nothing(run, host, tmp_path: Path) -> None:
    from dataloader.batch import Batch
    from dataloader.connector import RunContext
    from dataloader.errors import ConnectorError
    from dataloader.state import State
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    out = tmp_path / "out"
    run(SOURCE, dataset_dest(out))
    slow = FilestoreConnector(FilestoreConfig.model_validate(dataset_dest(out)))
    slow.context = RunContext(recipe_name="slow", run_id="slow-run", role="destination")
    slow.open()
    batch = Batch.from_arrow(pa.table({"id": [1, 2]}))
    slow.begin(batch.schema, "append", State())
    slow.write_batch(batch, State())
    fast = run(SOURCE, dataset_dest(out))  # commits while the slow run is still writing
    with pytest.raises(ConnectorError, match="another run committed"):
        slow.commit(State())
    slow.abort()
    assert [p["name"].split("-00000")[0] for p in manifest(out)["parts"]][-1] == f"part-{fast.run_id}"
    assert not list(out.glob("*slow-run*"))
