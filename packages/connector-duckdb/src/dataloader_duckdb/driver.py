"""The boundary with the ``duckdb`` driver: loading it, connecting, translating its errors.

Every ``duckdb`` exception leaves this package as a :class:`ConnectorError` made here, once; a
write-write conflict is a :class:`TransientConnectorError`, because retrying can succeed. A file
held by another process is a plain :class:`ConnectorError` naming that process: the holder is a
long run or a person with the file open, and the run should say so at once rather than retry.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
from dataloader.errors import ConnectorError, DataLoaderError, TransientConnectorError

MEMORY = ":memory:"
_TRANSIENT_MARKERS = ("conflict on", "write-write conflict")


def load_driver() -> ModuleType:
    try:
        import duckdb
    except ImportError as exc:
        from dataloader.install import install_hint

        raise ConnectorError(
            f"the duckdb connector needs the 'duckdb' package: {install_hint('duckdb')}",
            connector="duckdb",
        ) from exc
    return duckdb


def is_memory(database: str) -> bool:
    return database.strip() == MEMORY


def database_path(database: str) -> str:
    return database if is_memory(database) else os.path.expanduser(database)


def connect(database: str, *, read_only: bool) -> Any:
    """A connection to ``database``; read-only when asked and the file allows it.

    Within one process DuckDB shares one database instance per file, and refuses a read-only
    connection while a read-write one is open there (a DuckDB-to-DuckDB recipe on one file, or a
    test holding the file open); reading through a read-write connection is then the only way in.
    """
    duckdb = load_driver()
    path = database_path(database)
    if read_only and not is_memory(path):
        try:
            return duckdb.connect(path, read_only=True)
        except duckdb.ConnectionException as exc:
            if "different configuration" not in str(exc):
                raise translate(exc, f"open DuckDB database {path}", database=path) from exc
        except duckdb.Error as exc:
            raise translate(exc, f"open DuckDB database {path}", database=path) from exc
    try:
        return duckdb.connect(path)
    except duckdb.Error as exc:
        hint = ""
        if "different configuration" in str(exc):
            hint = " (it is open read-only in this process; read and write it through one connector type)"
        raise translate(exc, f"open DuckDB database {path}{hint}", database=path) from exc


def require_existing_file(database: str) -> None:
    """A source never creates a database: a missing file is an error that names it."""
    if is_memory(database):
        return
    path = Path(database_path(database))
    if not path.exists():
        raise ConnectorError(
            f"DuckDB database file {path} does not exist; check the source's 'database' key "
            f"(working directory: {Path.cwd()})",
            database=str(path),
        )
    if path.is_dir():
        raise ConnectorError(f"DuckDB database {path} is a directory, not a database file", database=str(path))


def require_parent_dir(database: str) -> None:
    """A destination creates its database file, but not the folder it lives in."""
    if is_memory(database):
        return
    parent = Path(database_path(database)).resolve().parent
    if not parent.is_dir():
        raise ConnectorError(
            f"the folder {parent} for DuckDB database {database} does not exist; create it first",
            database=database,
        )


def translate(exc: BaseException, action: str, *, out_of_memory: str | None = None, **facts: Any) -> DataLoaderError:
    """One :class:`ConnectorError` for a driver exception, with the first line of DuckDB's message.

    ``out_of_memory`` is the advice for a DuckDB out-of-memory error (which setting to raise),
    given by a caller that knows the recipe's keys.
    """
    if isinstance(exc, DataLoaderError):
        return exc
    cause = exc.__context__
    if "transaction is aborted" in str(exc) and cause is not None and cause is not exc:
        # A relation's statement that failed inside a transaction reports the aborted transaction;
        # the error that aborted it (a constraint, a conversion) is the one worth telling.
        return translate(cause, action, out_of_memory=out_of_memory, **facts)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    held = _held_by_another_process(text)
    if held is not None:
        # Not transient: the holder is a run or a person with the file open, not a blip; a retry a
        # second later would only repeat this line.
        return ConnectorError(f"could not {action}: {held}", **facts)
    if out_of_memory is not None and is_out_of_memory(text):
        return ConnectorError(f"could not {action}: DuckDB ran out of memory ({text}); {out_of_memory}", **facts)
    cls = TransientConnectorError if any(m in text.lower() for m in _TRANSIENT_MARKERS) else ConnectorError
    return cls(f"could not {action}: {text}", **facts)


_OUT_OF_MEMORY_MARKERS = ("out of memory", "could not allocate block", "failed to pin block", "failed to allocate data")


_LOCK_HELD = re.compile(r'could not set lock on file "(?P<file>[^"]+)".*?\(PID (?P<pid>\d+)\)', re.IGNORECASE)


def _held_by_another_process(text: str) -> str | None:
    """DuckDB's "Could not set lock on file ... (PID n)", said as what it means and what to do."""
    match = _LOCK_HELD.search(text)
    if match is None:
        return None
    pid = match.group("pid")
    return (
        f"{match.group('file')} is open in another process (pid {pid}), and DuckDB lets one process at a "
        f"time hold a file that is written: wait for that process to finish, or stop it (kill {pid}) if it "
        "should not be running, then run again"
    )


def is_out_of_memory(text: str) -> bool:
    """DuckDB says it in several ways; a failed COMMIT reports it as a "TransactionContext Error"."""
    return any(marker in text.lower() for marker in _OUT_OF_MEMORY_MARKERS)


@contextlib.contextmanager
def translating(action: str, **facts: Any) -> Iterator[None]:
    """Turn any ``duckdb`` error raised in the block into a :class:`ConnectorError` (see :func:`translate`)."""
    duckdb = load_driver()
    try:
        yield
    except (duckdb.Error, pa.ArrowException) as exc:
        raise translate(exc, action, **facts) from exc


def arrow_reader(con: Any, sql: str, params: list[Any], batch_size: int) -> pa.RecordBatchReader:
    """Stream the result of ``sql`` as Arrow record batches of about ``batch_size`` rows.

    DuckDB builds the Arrow batches itself; no row passes through Python.
    """
    relation = con.sql(sql, params=params or None)
    for method in ("to_arrow_reader", "fetch_record_batch", "record_batch"):
        if hasattr(relation, method):
            return getattr(relation, method)(batch_size)
    return con.execute(sql, params).fetch_record_batch(batch_size)  # pragma: no cover - very old drivers


__all__ = [
    "MEMORY",
    "arrow_reader",
    "connect",
    "database_path",
    "is_memory",
    "is_out_of_memory",
    "load_driver",
    "require_existing_file",
    "require_parent_dir",
    "translate",
    "translating",
]
