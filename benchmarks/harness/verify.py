"""What landed in a target, checked against the data set's known facts.

Every run is verified: row count, distinct ids, sum of ids and the NULL count of ``note``. A
target that loses or duplicates rows (or NULLs) fails the run; its time is not reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.datagen import Expected
from harness.postgres import PgTarget

FACTS_SQL = "SELECT count(*), count(DISTINCT id), sum(id), count(*) - count(note) FROM {table}"
#: W5/W6 also check the merged values (a peer's table with other column types gets the four facts above).
EXTRA_FACTS_SQL = ("SELECT (sum(amount) * 100)::bigint, sum((extract(epoch FROM updated_at) * 1000)::bigint) "
                   "FROM {table}")
SCRIPTS = Path(__file__).parent / "scripts"


class VerificationError(Exception):
    """The target does not hold exactly the data set."""


def compare(expected: Expected | dict[str, int], facts: dict[str, int]) -> None:
    wanted = expected if isinstance(expected, dict) else expected.to_dict()
    wrong = [f"{key} {facts.get(key)} != {value}" for key, value in wanted.items()
             if facts.get(key) != value]
    if wrong:
        raise VerificationError("; ".join(wrong))


@dataclass
class ParquetTarget:
    """A Parquet file, or a folder of them (a dataloader dataset folder is read through its manifest)."""

    path: Path

    def reset(self) -> None:
        import shutil

        if self.path.is_dir():
            shutil.rmtree(self.path)
        elif self.path.exists():
            self.path.unlink()

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise VerificationError(f"{self.path} does not exist")
        manifest = self.path / "_dataloader_manifest.json"
        if manifest.exists():
            listed = json.loads(manifest.read_text())
            parts = listed.get("parts") or listed.get("files") or []
            return [self.path / (p if isinstance(p, str) else p.get("path") or p["name"]) for p in parts]
        return sorted(p for p in self.path.rglob("*.parquet")
                      if not any(part.startswith((".", "_")) for part in p.relative_to(self.path).parts))

    def facts(self) -> dict[str, int]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        files = self.files()
        if not files:
            raise VerificationError(f"no Parquet files under {self.path}")
        ids, nulls, rows = [], 0, 0
        for file in files:
            table = pq.read_table(file, columns=["id", "note"])
            rows += table.num_rows
            nulls += table.column("note").null_count
            ids.append(table.column("id").cast(pa.int64()))
        all_ids = pa.chunked_array([c for col in ids for c in col.chunks], pa.int64())
        return {"rows": rows, "distinct_ids": pc.count_distinct(all_ids).as_py(),
                "sum_id": pc.sum(all_ids).as_py() or 0, "null_notes": nulls}


@dataclass
class PostgresTableTarget:
    pg: PgTarget
    schema: str
    table: str = "events"

    @property
    def qualified(self) -> str:
        return f'"{self.schema}"."{self.table}"'

    def reset(self) -> None:
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.commit()
        finally:
            conn.close()

    def facts(self) -> dict[str, int]:
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (self.qualified,))
                if cur.fetchone()[0] is None:
                    raise VerificationError(f"table {self.qualified} does not exist")
                cur.execute(FACTS_SQL.format(table=self.qualified))
                rows, distinct, total, nulls = cur.fetchone()
                facts = {"rows": rows, "distinct_ids": distinct, "sum_id": int(total or 0), "null_notes": nulls}
                conn.commit()
                try:
                    cur.execute(EXTRA_FACTS_SQL.format(table=self.qualified))
                    cents, updated_ms = cur.fetchone()
                    facts.update(sum_amount_cents=int(cents or 0), sum_updated_ms=int(updated_ms or 0))
                except Exception:
                    conn.rollback()
        finally:
            conn.close()
        return facts


@dataclass
class DuckDBTarget:
    """A table in a DuckDB file, read by ``python`` (a peer's venv when the peer's DuckDB is newer)."""

    path: Path
    table: str = "main.events"
    python: str = sys.executable

    def reset(self) -> None:
        for suffix in ("", ".wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.unlink()

    def facts(self) -> dict[str, int]:
        if not self.path.exists():
            raise VerificationError(f"{self.path} does not exist")
        done = subprocess.run([self.python, str(SCRIPTS / "duckdb_facts.py"), str(self.path), self.table],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise VerificationError(f"reading {self.path}:{self.table} failed: {done.stderr.strip()[-400:]}")
        return json.loads(done.stdout)
