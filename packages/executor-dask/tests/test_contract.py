"""The contract kit's suite (faults included) with ``runtime.executor: dask``, DuckDB files as the target.

The kit's sources have no partitions, so the dask executor reads them on the driver; what this
suite shows is that the commit protocol (killed around the commit, lost replies, leases, failed
runs) holds with the executor in the loop, in this process and in killed child processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dataloader.testing import ConnectorContractSuite
from dataloader_duckdb.testing import DuckDBTarget

CHECKPOINTS = "runtime.checkpoint_every is refused by the dask executor: a rerun resumes by finished partitions instead"


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
