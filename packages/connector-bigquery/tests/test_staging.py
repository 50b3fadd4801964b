"""``staging``: each commit's Parquet goes through a GCS prefix and ``load_table_from_uri``.

End to end against the GCS emulator (gcp-storage-emulator) and the BigQuery emulator, whose load
jobs read the ``gs://`` objects from it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from conftest import Warehouse, people
from dataloader.errors import ConnectorError, RecipeError
from dataloader.testing import MEMORY_TABLES
from dataloader_bigquery.config import BigQueryConfig
from dataloader_bigquery.writer import safe_name
from gcsemulator import GcsEmulator


def _memory_source(table: pa.Table, key: str = "staged_rows") -> dict[str, object]:
    MEMORY_TABLES[key] = table
    return {"type": "contract_memory", "table": key}


def _storage(gcs: GcsEmulator) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs.endpoint})


def _objects(gcs: GcsEmulator, prefix: str = "") -> list[str]:
    return [blob.name for blob in _storage(gcs).list_blobs(gcs.bucket, prefix=prefix)]


def _stages(warehouse: Warehouse) -> list[str]:
    return [t.table_id for t in warehouse.bq.list_tables(warehouse.dataset) if t.table_id.startswith("_dataloader_stage_")]


def _staging(gcs: GcsEmulator, prefix: str) -> dict[str, Any]:
    return {"staging": {"uri": f"gs://{gcs.bucket}/{prefix}", "api_endpoint": gcs.endpoint}}


def _load_uris(warehouse: Warehouse, table: str) -> list[list[str]]:
    """The source URIs of the load jobs into staging tables of ``table``, oldest first."""
    uris = []
    for job in warehouse.bq.list_jobs(all_users=True):
        target = getattr(job, "destination", None)
        if (job.job_type == "load" and target is not None and target.dataset_id == warehouse.dataset
                and target.table_id.startswith(f"_dataloader_stage_{table}_")):
            uris.append(list(job.source_uris or []))
    return uris


def test_rows_go_through_gcs_and_load_table_from_uri(warehouse: Warehouse, gcs: GcsEmulator) -> None:
    prefix = f"{warehouse.dataset}/runs"
    destination = {**warehouse.keys(table="t"), **_staging(gcs, prefix)}
    first = warehouse.run(_memory_source(people([1, 2, 3])), destination, name="staged")
    second = warehouse.run(_memory_source(people([4, 5])), destination, name="staged")
    assert first.rows_written == 3 and second.rows_written == 2
    assert warehouse.rows("SELECT id, name FROM `{ds}.t` ORDER BY id") == [(i, f"person {i}") for i in range(1, 6)]
    # The load jobs read run- and commit-unique objects under the prefix; none is left behind.
    loads = [uri for job in _load_uris(warehouse, "t") for uri in job]
    assert len(loads) == 2 and len(set(loads)) == 2
    for uri in loads:
        assert uri.startswith(f"gs://{gcs.bucket}/{prefix}/") and uri.endswith(".parquet")
    for run in (first, second):
        assert len([u for u in loads if f"/{safe_name(run.run_id)}/{warehouse.dataset}_t/" in u]) == 1
    assert _objects(gcs, prefix) == []
    assert _stages(warehouse) == []
    (state,) = warehouse.rows("SELECT run_id FROM `{ds}._dataloader_state` WHERE recipe_name = 'staged'")
    assert state[0] == second.run_id


def test_merge_through_staging_with_a_plain_uri_string(warehouse: Warehouse, gcs: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plain string uses the default endpoint of the storage client: STORAGE_EMULATOR_HOST.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint)
    destination = {**warehouse.keys(table="m"), "write_mode": "merge", "merge_keys": ["id"],
                   "staging": f"gs://{gcs.bucket}/{warehouse.dataset}"}
    warehouse.run(_memory_source(people([1, 2], ["a", "b"])), destination)
    warehouse.run(_memory_source(people([2, 3, 2], ["first", "c", "last"])), destination)
    assert warehouse.rows("SELECT id, name FROM `{ds}.m` ORDER BY id") == [(1, "a"), (2, "last"), (3, "c")]
    assert _objects(gcs, warehouse.dataset) == []


def test_failed_transaction_deletes_objects_and_changes_nothing(warehouse: Warehouse, gcs: GcsEmulator) -> None:
    prefix = f"{warehouse.dataset}/fail"
    warehouse.bq.query_and_wait(f"CREATE TABLE `{warehouse.dataset}.u` (id INT64, name INT64)")
    warehouse.bq.query_and_wait(f"INSERT INTO `{warehouse.dataset}.u` (id, name) VALUES (1, 100)")
    destination = {**warehouse.keys(table="u"), "write_mode": "overwrite", **_staging(gcs, prefix)}
    with pytest.raises(ConnectorError, match="committing"):
        warehouse.run(_memory_source(people([5, 6])), destination, name="r")
    assert len(_load_uris(warehouse, "u")) == 1  # the objects were loaded, then the script failed
    assert warehouse.rows("SELECT id, name FROM `{ds}.u`") == [(1, 100)]
    assert not warehouse.exists("_dataloader_state") or warehouse.count("_dataloader_state") == 0
    assert _objects(gcs, prefix) == []
    assert _stages(warehouse) == []


def test_missing_bucket_fails_clearly_before_anything_is_published(warehouse: Warehouse, gcs: GcsEmulator) -> None:
    destination = {**warehouse.keys(table="t"), "staging": {"uri": "gs://no-such-bucket-dl/x", "api_endpoint": gcs.endpoint}}
    with pytest.raises(ConnectorError, match=r"gcs \(gs://no-such-bucket-dl/x at .*uploading") as caught:
        warehouse.run(_memory_source(people([1])), destination)
    assert "no-such-bucket-dl" in str(caught.value)
    # Only the (documented) empty target the commit created before its load; no rows, no record.
    assert warehouse.count("t") == 0
    assert not warehouse.exists("_dataloader_state") or warehouse.count("_dataloader_state") == 0
    assert _stages(warehouse) == []


@pytest.mark.parametrize("uri", ["s3://bucket/x", "gs://", "gs://Upper/x", "bucket/prefix"])
def test_a_staging_uri_that_is_not_gs_is_refused(uri: str) -> None:
    keys = {"type": "bigquery", "project": "p", "table": "d.t", "anonymous": True, "staging": uri}
    with pytest.raises((ValueError, RecipeError), match="gs://bucket"):
        BigQueryConfig(**keys)


def test_staging_prefix_parts() -> None:
    config = BigQueryConfig(type="bigquery", project="p", table="d.t", staging="gs://b-1/a/b/")
    assert config.staging is not None
    assert (config.staging.bucket, config.staging.prefix, config.staging.api_endpoint) == ("b-1", "a/b/", None)
    bare = BigQueryConfig(type="bigquery", project="p", table="d.t", staging={"uri": "gs://b-1"})
    assert bare.staging is not None and bare.staging.prefix == ""
