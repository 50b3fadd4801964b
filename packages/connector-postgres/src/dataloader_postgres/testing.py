"""Test helpers shipped with the connector: a PostgreSQL server for a test session, and fixtures.

Finding (or starting) a server:

Order: ``DATALOADER_TEST_POSTGRES_DSN``; else the server at 127.0.0.1:5432 as user ``postgres``;
else a throwaway cluster made with the local ``initdb``/``pg_ctl`` in a temporary folder on a
free port. :func:`start_cluster` also serves tests that need a server of their own (one that
checks passwords, say).

Fixtures (import them into a ``conftest.py``: ``from dataloader_postgres.testing import pg, pg_params,
pg_server, section``): ``pg_server`` (a server for the session; without one the tests skip, under
``CI`` they fail), ``pg_params`` (a database of the session's own, dropped at the end), ``pg`` (an
autocommit connection to it) and ``section(**extra)`` (a recipe section that reaches it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extensions import parse_dsn


@dataclass
class Cluster:
    """A throwaway cluster; ``stop()`` removes it."""

    datadir: Path
    port: int
    run_as: str | None
    pg_ctl: str
    params: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        _run([self.pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop"], self.run_as, check=False)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _run(cmd: list[str], run_as: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    if run_as:
        cmd = ["runuser", "-u", run_as, "--", *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(auth: str = "trust", password: str | None = None) -> Cluster:
    """initdb + pg_ctl start on a free loopback port; root runs them as the ``postgres`` user."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("no initdb/pg_ctl found (PATH or /usr/lib/postgresql/*/bin)")
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
            run_as = "postgres"
        except KeyError as exc:
            raise RuntimeError("running as root and there is no 'postgres' user to run initdb as") from exc
    root = Path(tempfile.mkdtemp(prefix="dl-pg-"))
    datadir = root / "data"
    if run_as:
        shutil.chown(root, user=run_as)
    pwfile = root / "pw"
    args = [initdb, "-D", str(datadir), "-U", "postgres", "--auth", auth, "-E", "UTF8", "--no-sync"]
    if password:
        pwfile.write_text(password)
        if run_as:
            shutil.chown(pwfile, user=run_as)
        args += ["--pwfile", str(pwfile)]
    _run(args, run_as)
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    _run([pg_ctl, "-D", str(datadir), "-o", options, "-l", str(root / "log"), "-w", "start"], run_as)
    params = {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres"}
    return Cluster(datadir, port, run_as, pg_ctl, params)


def _usable(params: dict[str, Any]) -> bool:
    try:
        psycopg2.connect(connect_timeout=3, **params).close()
        return True
    except psycopg2.Error:
        return False


def find_server() -> tuple[dict[str, Any], Cluster | None]:
    """Connection parameters of a server the tests may create databases on, and the cluster
    started for them (None when an existing server was used)."""
    dsn = os.environ.get("DATALOADER_TEST_POSTGRES_DSN")
    if dsn:
        return dict(parse_dsn(dsn)), None
    local = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
    if _usable(local):
        return local, None
    cluster = start_cluster()
    return cluster.params, cluster


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, Any]]:
    try:
        params, cluster = find_server()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL server for the tests under CI: {exc}")
        pytest.skip(f"no PostgreSQL server available: {exc}")
    try:
        yield params
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session")
def pg_params(pg_server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Connection parameters of this session's own database."""
    name = f"dl_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(**pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**pg_server, "dbname": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg(pg_params: dict[str, Any]) -> Iterator[Any]:
    """An autocommit connection to the test database, for arranging and checking."""
    conn = psycopg2.connect(**pg_params)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def section(pg_params: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A recipe section dict (``type: postgres`` + connection keys) plus ``extra`` keys."""

    def make(**extra: Any) -> dict[str, Any]:
        base = {
            "type": "postgres",
            "host": pg_params.get("host", "127.0.0.1"),
            "port": int(pg_params.get("port", 5432)),
            "database": pg_params["dbname"],
            "user": pg_params.get("user", "postgres"),
        }
        if pg_params.get("password"):
            base["password"] = pg_params["password"]
        return {**base, **extra}

    return make
