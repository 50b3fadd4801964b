"""Fixtures: the fakesnow emulator in server mode, a database of the session's own, recipe sections.

The emulator runs in its own process (``fakesnow_server.py``) on a free loopback port for the
whole session; each session creates a database with a random name. Without fakesnow the tests
skip, except under CI (``CI`` set), where a failure to start fails them.

Tests marked ``real_account`` run against a real Snowflake account when
``DATALOADER_TEST_SNOWFLAKE_ACCOUNT``, ``_USER`` and ``_PASSWORD`` (or ``_PRIVATE_KEY_FILE``),
plus optionally ``_ROLE``, ``_WAREHOUSE``, ``_DATABASE`` are set; otherwise they skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the fakesnow emulator is required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def emulator() -> Iterator[dict[str, Any]]:
    """Connection keys of a running fakesnow server."""
    try:
        import fakesnow  # noqa: F401
    except ImportError as exc:
        _unavailable(f"fakesnow is not installed ({exc}); pip install 'fakesnow[server]==0.12.1'")
    port = _free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"fakesnow-{port}.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fakesnow_server.py"), str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            log.close()
            _unavailable(f"fakesnow exited with {process.returncode}; see {log.name}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                _unavailable("fakesnow did not listen within 60 s")
            time.sleep(0.1)
    try:
        yield {
            "account": "fakesnow",
            "user": "fake",
            "password": "snow",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if not os.environ.get("DATALOADER_KEEP_FAKESNOW_LOG"):
            Path(log.name).unlink(missing_ok=True)


def raw_connect(keys: dict[str, Any], **extra: Any) -> Any:
    import snowflake.connector

    return snowflake.connector.connect(
        **keys, paramstyle="qmark", session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}, **extra
    )


@pytest.fixture(scope="session")
def database(emulator: dict[str, Any]) -> Iterator[str]:
    name = f"DL_TEST_{uuid.uuid4().hex[:8].upper()}"
    conn = raw_connect(emulator)
    try:
        conn.cursor().execute(f"CREATE DATABASE {name}")
        yield name
    finally:
        conn.close()


@pytest.fixture
def schema(emulator: dict[str, Any], database: str) -> str:
    """A schema of the test's own: its tables and commit records are nobody else's."""
    name = f"T_{uuid.uuid4().hex[:10].upper()}"
    conn = raw_connect(emulator, database=database)
    try:
        conn.cursor().execute(f"CREATE SCHEMA {database}.{name}")
    finally:
        conn.close()
    return name


@pytest.fixture
def sf(emulator: dict[str, Any], database: str, schema: str) -> Iterator[Any]:
    """A driver connection to the test's schema, for arranging and checking."""
    conn = raw_connect(emulator, database=database, schema=schema)
    try:
        yield conn
    finally:
        conn.close()


def query(conn: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def section(emulator: dict[str, Any], database: str, schema: str) -> Callable[..., dict[str, Any]]:
    """A recipe section dict (``type: snowflake`` + connection keys) plus ``extra`` keys."""

    def make(**extra: Any) -> dict[str, Any]:
        # network_timeout: the emulator answers an unsupported statement with HTTP 500, which the
        # driver would otherwise retry for minutes.
        return {"type": "snowflake", **emulator, "database": database, "schema": schema, "network_timeout": 20, **extra}

    return make


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda stem: f"{stem}_{uuid.uuid4().hex[:8]}"


def real_account_keys() -> dict[str, Any] | None:
    prefix = "DATALOADER_TEST_SNOWFLAKE_"
    keys = {k[len(prefix):].lower(): v for k, v in os.environ.items() if k.startswith(prefix) and v}
    if not keys.get("account") or not keys.get("user"):
        return None
    return keys


@pytest.fixture
def real_account() -> dict[str, Any]:
    keys = real_account_keys()
    if keys is None:
        pytest.skip("needs a real Snowflake account: set DATALOADER_TEST_SNOWFLAKE_ACCOUNT, _USER, _PASSWORD ...")
    return keys
