"""W5 (incremental merge) and W6 (the same recipe, nothing changed): source, snapshots and checks.

The source is ``inc.events``: a copy of ``bench.events`` with a primary key on ``id`` and an index on
``updated_at`` (what an incrementally read table has). Every tool loads it in full once, untimed,
into a DuckDB file and into a Postgres table, with the same command it is timed with (its first run
has no state, so it reads everything). Then the change set is applied to the source, once:

- ``changes`` existing rows (every ``N // changes``-th id) get ``updated_at`` moved past every
  existing value and ``amount`` raised by 1.00;
- ``changes`` new rows (ids ``N+1 .. N+changes``) are inserted, with ``updated_at`` past the mark too.

W5: before every run (untimed) the tool's target and state are restored to the snapshot taken after
its initial load, so every timed run is the same merge of ``2 × changes`` rows; the source is never
written by a run. W6: the change set is applied before the initial load, so every timed run finds
nothing new.

Every run is verified on the final target (row count, distinct ids, sum of ids, NULL notes, sum of
``amount`` in cents, sum of ``updated_at`` in epoch milliseconds, all against the source) and on
what the tool says it read: exactly ``2 × changes`` rows in W5, none in W6.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.postgres import PgTarget
from harness.verify import DuckDBTarget, PostgresTableTarget, VerificationError

SOURCE = "inc.events"
INCREMENTAL_WORKLOADS = ("W5", "W6")
SOURCE_FACTS_SQL = (
    "SELECT count(*), count(DISTINCT id), sum(id), count(*) - count(note), "
    "(sum(amount) * 100)::bigint, sum((extract(epoch FROM updated_at) * 1000)::bigint) FROM {table}"
)


def changes_for(rows: int) -> int:
    """100,000 changed and 100,000 new rows for 2M rows (5 %); at least one of each."""
    return max(1, rows // 20)


def _change_source(pg: PgTarget, statements: list[tuple[str, tuple]]) -> None:
    """Run ``statements`` in one transaction, then refresh the source's statistics."""
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params or None)
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"VACUUM ANALYZE {SOURCE}")
    finally:
        conn.close()


def create_source(pg: PgTarget) -> None:
    """``inc.events`` = ``bench.events`` as loaded, keyed on id and indexed on updated_at."""
    _change_source(pg, [
        ("DROP SCHEMA IF EXISTS inc CASCADE", ()),
        ("CREATE SCHEMA inc", ()),
        (f"CREATE TABLE {SOURCE} (LIKE bench.events INCLUDING ALL)", ()),
        (f"INSERT INTO {SOURCE} SELECT * FROM bench.events", ()),
        (f"CREATE INDEX ON {SOURCE} (updated_at)", ()),
    ])


def apply_changes(pg: PgTarget, rows: int) -> int:
    """Update ``changes`` rows and insert ``changes`` new ones, all past the current mark."""
    n = changes_for(rows)
    step = max(1, rows // n)
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT max(updated_at) FROM {SOURCE}")
            (mark,) = cur.fetchone()
    finally:
        conn.close()
    _change_source(pg, [
        (
            f"UPDATE {SOURCE} SET amount = amount + 1.00, "
            "updated_at = %s + interval '1 hour' + id * interval '1 millisecond' "
            "WHERE id %% %s = 0 AND id <= %s",
            (mark, step, n * step),
        ),
        (
            f"INSERT INTO {SOURCE} SELECT id + %s, user_id, event_type, amount, ratio, is_active, created_at, "
            "%s + interval '2 hours' + id * interval '1 millisecond', payload, note "
            "FROM bench.events WHERE id <= %s",
            (rows, mark, n),
        ),
    ])
    return 2 * n


def source_facts(pg: PgTarget) -> dict[str, int]:
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(SOURCE_FACTS_SQL.format(table=SOURCE))
            values = cur.fetchone()
    finally:
        conn.close()
    keys = ("rows", "distinct_ids", "sum_id", "null_notes", "sum_amount_cents", "sum_updated_ms")
    return {key: int(value or 0) for key, value in zip(keys, values, strict=True)}


# -- per-tool snapshots -----------------------------------------------------------------------
@dataclass
class Snapshot:
    """The target and state of one tool right after its initial load; restored before each W5 run."""

    target: DuckDBTarget | PostgresTableTarget
    state_paths: list[Path]
    #: A Postgres destination that commits its state with the rows (dataloader's ``_dataloader_state``
    #: row for this recipe): restored with the table, else the tool would trust it over the state file.
    commit_record: tuple[PgTarget, str, str] | None = None  # (database, qualified table, recipe name)

    def _saved(self, path: Path) -> Path:
        return path.with_name(path.name + ".snapshot")

    @staticmethod
    def _copy_over(origin: Path, copy: Path) -> None:
        """``copy`` becomes what ``origin`` is now: a folder, a file, or nothing."""
        _remove(copy)
        if origin.is_dir():
            shutil.copytree(origin, copy)
        elif origin.exists():
            shutil.copy2(origin, copy)

    def take(self) -> None:
        for path in self.state_paths:
            self._copy_over(path, self._saved(path))
        if isinstance(self.target, DuckDBTarget):
            for p in _duck_files(self.target.path):
                shutil.copy2(p, self._saved(p))
        else:
            with _pg(self.target.pg) as cur:
                cur.execute(f'DROP TABLE IF EXISTS "{self.target.schema}"."snapshot_events"')
                cur.execute(f'CREATE TABLE "{self.target.schema}"."snapshot_events" AS TABLE {self.target.qualified}')
        if self.commit_record:
            pg, table, recipe = self.commit_record
            with _pg(pg) as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self._record_copy}")
                cur.execute("SELECT to_regclass(%s)", (table,))
                if cur.fetchone()[0] is None:
                    raise VerificationError(f"{table} does not exist after the initial load")
                cur.execute(f"CREATE TABLE {self._record_copy} AS SELECT * FROM {table} WHERE recipe_name = %s",
                            (recipe,))

    def restore(self) -> None:
        for path in self.state_paths:
            self._copy_over(self._saved(path), path)
        if isinstance(self.target, DuckDBTarget):
            for suffix in ("", ".wal"):
                _remove(Path(str(self.target.path) + suffix))
            for p in _duck_files(self.target.path, saved=True):
                shutil.copy2(p, Path(str(p)[: -len(".snapshot")]))
        else:  # TRUNCATE + INSERT keeps the table the tool created: its keys, indexes and grants
            with _pg(self.target.pg) as cur:
                cur.execute(f"TRUNCATE {self.target.qualified}")
                cur.execute(f'INSERT INTO {self.target.qualified} SELECT * FROM "{self.target.schema}"."snapshot_events"')
                cur.execute(f"ANALYZE {self.target.qualified}")
        if self.commit_record:
            pg, table, recipe = self.commit_record
            with _pg(pg) as cur:
                cur.execute("BEGIN")
                cur.execute(f"DELETE FROM {table} WHERE recipe_name = %s", (recipe,))
                cur.execute(f"INSERT INTO {table} SELECT * FROM {self._record_copy}")
                cur.execute("COMMIT")

    @property
    def _record_copy(self) -> str:
        return f'"{self.target.schema}"."snapshot_commit_record"'


def _duck_files(path: Path, saved: bool = False) -> list[Path]:
    suffix = ".snapshot" if saved else ""
    found = [Path(str(path) + s + suffix) for s in ("", ".wal")]
    return [p for p in found if p.exists()]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


class _pg:
    def __init__(self, pg: PgTarget) -> None:
        self.conn = pg.connect()

    def __enter__(self):
        self.conn.autocommit = True
        return self.conn.cursor()

    def __exit__(self, *exc) -> None:
        self.conn.close()


# -- what each tool says it read --------------------------------------------------------------
def rows_read_from_log(pattern: str) -> Callable[[str], int | None]:
    regex = re.compile(pattern)

    def parse(text: str) -> int | None:
        found = regex.findall(text)
        return int(str(found[-1]).replace(",", "")) if found else None  # the run's final summary

    return parse


def boundary_rows(pg: PgTarget, mark) -> int:
    """Rows of the source whose cursor equals ``mark``: a cursor read "at or past" the mark reads them again."""
    with _pg(pg) as cur:
        cur.execute(f"SELECT count(*) FROM {SOURCE} WHERE updated_at = %s", (mark,))
        return cur.fetchone()[0]


def current_mark(pg: PgTarget):
    with _pg(pg) as cur:
        cur.execute(f"SELECT max(updated_at) FROM {SOURCE}")
        return cur.fetchone()[0]


@dataclass(frozen=True)
class ReadCheck:
    """A run must read the ``changed`` rows, plus at most the ``boundary`` rows sitting at the previous mark."""

    changed: int
    boundary: int

    def check(self, text: str, parse: Callable[[str], int | None]) -> int:
        read = parse(text)
        if read is None:
            raise VerificationError("the tool's output does not say how many rows it read")
        if not self.changed <= read <= self.changed + self.boundary:
            raise VerificationError(
                f"read {read:,} rows; only the {self.changed:,} changed rows (plus {self.boundary} row(s) at the "
                "previous mark) should have been read")
        return read
