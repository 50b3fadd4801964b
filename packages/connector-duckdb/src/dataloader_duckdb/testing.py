"""Test helpers shipped with the connector: DuckDB files as a contract-kit target.

``DuckDBTarget(tmp_path)`` is a :class:`dataloader.testing.ContractTarget`: the kit's suites (this
connector's own, and an executor's run under another executor) seed ``src`` in ``source.duckdb``
and read ``dw.loaded`` back from ``target.duckdb``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa


class DuckDBTarget:
    """A source table ``src`` in ``source.duckdb``; the destination table ``dw.loaded`` in ``target.duckdb``."""

    def __init__(self, root: Path) -> None:
        self.source_db = str(root / "source.duckdb")
        self.target_db = str(root / "target.duckdb")

    def _write(self, table: pa.Table, statement: str) -> None:
        con = duckdb.connect(self.source_db)
        try:
            con.register("rows", table)
            con.execute(statement)
        finally:
            con.close()

    def source_section(self, table: pa.Table) -> dict[str, Any]:
        self._write(table, "CREATE OR REPLACE TABLE src AS SELECT * FROM rows")
        return {"type": "duckdb", "database": self.source_db, "table": "src"}

    def append_source(self, table: pa.Table) -> None:
        self._write(table, "INSERT INTO src BY NAME SELECT * FROM rows")

    def destination_section(self) -> dict[str, Any]:
        return {"type": "duckdb", "database": self.target_db, "table": "dw.loaded"}

    def read_destination(self) -> pa.Table | None:
        if not Path(self.target_db).exists():
            return None
        con = duckdb.connect(self.target_db, read_only=True)
        try:
            found = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'dw' AND table_name = 'loaded'"
            ).fetchall()[0][0]
            return con.sql('SELECT * FROM dw."loaded"').to_arrow_table() if found else None
        finally:
            con.close()


__all__ = ["DuckDBTarget"]
