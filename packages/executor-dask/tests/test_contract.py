"""The contract kit's suite (faults included) with ``runtime.executor: dask``, DuckDB files as the target.

The kit's sources have no partitions, so the dask executor reads them on the driver; what this
suite shows is that the commit protocol (killed around the commit, lost replies, leases, failed
runs) holds with the executor in the loop, in this process and in killed child processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from dataloader.testing import ConnectorContractSuite

CHECKPOINTS = "runtime.checkpoint_every is refused by the dask executor: a rerun resumes by finished partitions instead"


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


class TestContractUnderDask(ConnectorContractSuite):
    connector_type = "duckdb"
    xfail = {
        "test_fault_checkpointed_run_resumes_without_loss_or_duplicate": CHECKPOINTS,
        "test_fault_resume_after_the_source_changed_is_refused": CHECKPOINTS,
    }

    @pytest.fixture(autouse=True)
    def _on_the_cluster(self, cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(
            type(self), "runtime",
            {"executor": "dask", "scheduler": cluster.scheduler_address, "staging": str(tmp_path / "staging")},
        )

    @pytest.fixture
    def contract_target(self, tmp_path: Path) -> DuckDBTarget:
        return DuckDBTarget(tmp_path)
