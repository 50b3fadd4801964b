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
