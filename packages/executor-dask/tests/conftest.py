"""Fixtures: one LocalCluster with 2 worker processes for the module, a Postgres database of our own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dataloader_postgres.testing import pg, pg_params, pg_server, section  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """Two worker processes. Each worker process pauses once at its first batch read, so a test has
    time to kill a worker while it holds a task (Dask restarts it and runs the task again)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        env={"DATALOADER_FAULT_PAUSE": "batch_read:1.5"},
    )
    client = Client(cluster)
    try:
        yield cluster
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def pg_section(section: Any) -> Any:  # noqa: F811
    """A recipe section that reaches this session's database (``dataloader_postgres.testing``)."""
    return section


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback (nothing reaches real AWS)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("moto[server] is not installed (CI is set, so this is a failure, not a skip)")
        pytest.skip("moto[server] is not installed")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


S3_KEYS = {"key": "testing-key-id", "secret": "testing-secret-value", "region": "us-east-1"}


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
    """(an s3fs file system, the recipe keys that reach the server, a fresh bucket name)."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=S3_KEYS["key"], secret=S3_KEYS["secret"], endpoint_url=moto_endpoint,
        client_kwargs={"region_name": "us-east-1"}, use_listings_cache=False, skip_instance_cache=True,
    )
    bucket = f"dask-{uuid.uuid4().hex[:8]}"
    fs.call_s3("create_bucket", Bucket=bucket)
    yield fs, {"endpoint_url": moto_endpoint, **S3_KEYS}, bucket
    fs.rm(bucket, recursive=True)
