"""Fixtures of the fault-injection suite: a PostgreSQL database of its own, and the CLI to kill."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so a missing service is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dataloader_bin() -> str:
    script = Path(sys.executable).parent / "dataloader"
    found = str(script) if script.exists() else shutil.which("dataloader")
    if not found:
        pytest.fail("the dataloader script is not installed in this environment")
    return found


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    psycopg2 = pytest.importorskip("psycopg2")
    base = os.environ.get("DATALOADER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        admin = psycopg2.connect(base, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        _fail_or_skip(f"no PostgreSQL server at {base.split('@')[-1]}: {exc}")
    admin.autocommit = True
    name = f"dl_faults_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    dsn = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield dsn
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# -- S3 (moto's server on loopback) ---------------------------------------------------------------
S3_CREDENTIALS = {"key": "reliability-key-id", "secret": "reliability-secret", "region": "us-east-1"}


class S3Place:
    """A fresh bucket on the moto server, and an s3fs file system to look into it."""

    def __init__(self, endpoint_url: str, bucket: str, fs: object) -> None:
        self.endpoint_url, self.bucket, self.fs = endpoint_url, bucket, fs

    @property
    def options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint_url, **S3_CREDENTIALS}

    def url(self, rel: str) -> str:
        return f"s3://{self.bucket}/{rel}"

    def key(self, rel: str) -> str:
        return f"{self.bucket}/{rel}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        _fail_or_skip("moto[server] is not installed")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_place(moto_server: str) -> S3Place:
    s3fs = pytest.importorskip("s3fs")
    fs = s3fs.S3FileSystem(
        key=S3_CREDENTIALS["key"],
        secret=S3_CREDENTIALS["secret"],
        endpoint_url=moto_server,
        client_kwargs={"region_name": "us-east-1"},
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    bucket = f"dl-rel-{uuid.uuid4().hex[:12]}"
    fs.call_s3("create_bucket", Bucket=bucket)
    return S3Place(moto_server, bucket, fs)
