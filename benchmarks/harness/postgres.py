"""Postgres for the benchmark: connection strings, the bench database, and a throwaway server.

The harness uses ``DATALOADER_TEST_POSTGRES_DSN`` (or ``--dsn``) or the local default. When nothing
answers at the default address it starts its own cluster with ``initdb``/``pg_ctl`` in a temporary
folder on a free loopback port, and stops it at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "dataloader_bench"


def _psycopg2():
    import psycopg2

    return psycopg2


@dataclass
class PgTarget:
    """Connection facts for one database, in the shapes the different tools want."""

    params: dict[str, str]

    @classmethod
    def from_dsn(cls, dsn: str) -> PgTarget:
        from psycopg2.extensions import parse_dsn

        return cls(parse_dsn(dsn))

    def with_database(self, name: str) -> PgTarget:
        return PgTarget({**self.params, "dbname": name})

    @property
    def host(self) -> str:
        return self.params.get("host", "127.0.0.1")

    @property
    def port(self) -> int:
        return int(self.params.get("port", 5432))

    @property
    def user(self) -> str:
        return self.params.get("user", "postgres")

    @property
    def password(self) -> str | None:
        return self.params.get("password")

    @property
    def dbname(self) -> str:
        return self.params.get("dbname", "postgres")

    def url(self, scheme: str = "postgresql", query: str = "") -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        url = f"{scheme}://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"
        return url + (f"?{query}" if query else "")

    def conninfo(self) -> str:
        """libpq key=value form, for ``psql``."""
        def esc(value: str) -> str:
            return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

        return " ".join(f"{key}={esc(value)}" for key, value in self.params.items())

    def connect(self):
        return _psycopg2().connect(**self.params)

    def describe(self) -> str:
        """host:port/db without the password, for reports."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def reachable(target: PgTarget) -> bool:
    try:
        conn = _psycopg2().connect(connect_timeout=3, **target.params)
    except Exception:
        return False
    conn.close()
    return True


def server_version(target: PgTarget) -> str:
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return cur.fetchone()[0]
    finally:
        conn.close()


def create_database(admin: PgTarget, name: str = BENCH_DB) -> PgTarget:
    """Make sure database ``name`` exists (it is kept when it already holds the data set)."""
    conn = admin.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return admin.with_database(name)


def drop_database(admin: PgTarget, name: str = BENCH_DB) -> None:
    conn = admin.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


class BenchLock:
    """One harness at a time per bench database: an advisory lock held on an admin connection.

    Two runs sharing ``dataloader_bench`` would reload and drop each other's data mid-run.
    """

    def __init__(self, admin: PgTarget, database: str) -> None:
        self.admin, self.database, self.conn = admin, database, None

    def acquire(self) -> None:
        self.conn = self.admin.connect()
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"dataloader-bench:{self.database}",))
            if not cur.fetchone()[0]:
                self.conn.close()
                raise SystemExit(f"error: another benchmark run is using database {self.database!r}; "
                                 "wait for it or pass --database NAME")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()  # closing the session releases the lock
            self.conn = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class ThrowawayServer:
    """A Postgres cluster in a temporary folder, on a free loopback port, trust auth."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dataloader-bench-pg-")))
    port: int = field(default_factory=_free_port)
    _as_user: list[str] = field(default_factory=list)

    def start(self) -> PgTarget:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("no Postgres server answers and initdb/pg_ctl are not installed; "
                               "start one or pass --dsn")
        if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        data = self.folder / "data"
        subprocess.run([*self._as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True)
        subprocess.run([*self._as_user, pg_ctl, "-D", str(data), "-l", str(self.folder / "server.log"), "-w",
                        "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        return PgTarget({"host": "127.0.0.1", "port": str(self.port), "user": "postgres", "dbname": "postgres"})

    def stop(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        if pg_ctl and (self.folder / "data").exists():
            subprocess.run([*self._as_user, pg_ctl, "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"],
                           capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
