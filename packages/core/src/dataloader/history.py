"""Run history: one record per run, success or failure, in a local SQLite file.

``dataloader runs`` reads it. The default file is ``.dataloader/runs.db`` in the working directory
(``DATALOADER_HISTORY`` overrides it; ``DATALOADER_HISTORY=off`` records nothing).

A record holds an error message and state snapshots (cursor values are row data), so the file is
created readable by its owner only (0600, like state files), and every secret the process knows is
masked (:func:`dataloader.secrets.mask`) before a record is written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from dataloader import secrets

DEFAULT_PATH = Path(".dataloader") / "runs.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    recipe TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    rows_read INTEGER NOT NULL,
    rows_written INTEGER NOT NULL,
    rows_failed INTEGER NOT NULL,
    error TEXT,
    state_before TEXT,
    state_after TEXT,
    dead_letter_path TEXT,
    schema_changes TEXT
)
"""

FIELDS = (
    "run_id",
    "recipe",
    "status",
    "started_at",
    "finished_at",
    "duration_s",
    "rows_read",
    "rows_written",
    "rows_failed",
    "error",
    "state_before",
    "state_after",
    "dead_letter_path",
    "schema_changes",
)


class RunHistory:
    """Appends run records to, and lists them from, a SQLite file."""

    _lock = threading.Lock()

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute(_SCHEMA)
        _migrate(con)
        return con

    def record(self, result: Any) -> None:
        row = (
            result.run_id,
            result.recipe_name,
            result.status,
            result.started_at,
            result.finished_at,
            float(result.duration_s),
            int(result.rows_read),
            int(result.rows_written),
            int(result.rows_failed),
            secrets.mask(result.error) if result.error else result.error,
            secrets.mask(json.dumps(result.state_before, default=str), structural=False),
            secrets.mask(json.dumps(result.state_after, default=str), structural=False),
            result.dead_letter_path,
            secrets.mask(json.dumps(list(getattr(result, "schema_changes", None) or []), default=str), structural=False),
        )
        with self._lock:
            con = self._connect()
            try:
                with con:
                    con.execute(f"INSERT OR REPLACE INTO runs ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})", row)
            finally:
                con.close()

    def mirror_schema(self, recipe_name: str, versions: list[dict[str, Any]]) -> Path:
        """Write ``recipe_name``'s schema versions to the local mirror beside this file."""
        from dataloader.schema.history import write_mirror

        return write_mirror(self.path.parent, recipe_name, versions)

    def schema_mirror(self, recipe_name: str) -> list[dict[str, Any]] | None:
        from dataloader.schema.history import read_mirror

        return read_mirror(self.path.parent, recipe_name)

    def list(self, *, status: str | None = None, recipe: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if recipe:
            where.append("recipe = ?")
            params.append(recipe)
        sql = f"SELECT {', '.join(FIELDS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid DESC LIMIT ?"
        params.append(limit)
        con = self._connect()
        try:
            rows = con.execute(sql, params).fetchall()
        finally:
            con.close()
        records = []
        for row in rows:
            record = dict(zip(FIELDS, row, strict=False))
            for key in ("state_before", "state_after"):
                record[key] = json.loads(record[key]) if record[key] else {}
            record["schema_changes"] = json.loads(record["schema_changes"]) if record["schema_changes"] else []
            records.append(record)
        return records


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a runs.db written by an older release up to date in place (its rows are kept)."""
    columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
    if "schema_changes" not in columns:
        with con:
            con.execute("ALTER TABLE runs ADD COLUMN schema_changes TEXT")


def _create_private(path: Path) -> None:
    """Create ``path`` as an empty 0600 file (SQLite's journals copy its mode); an older file that
    others could read is made private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:  # not ours to change: it stays as it is
            pass
        return
    os.close(fd)


def default_history() -> RunHistory | None:
    setting = os.environ.get("DATALOADER_HISTORY")
    if setting and setting.lower() in ("off", "0", "false", "none"):
        return None
    return RunHistory(setting or DEFAULT_PATH)


__all__ = ["RunHistory", "default_history", "DEFAULT_PATH"]
