"""The core's connector contract, run against real DuckDB files."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataloader.testing import ConnectorContractSuite
from dataloader_duckdb.testing import DuckDBTarget


class TestContract(ConnectorContractSuite):
    connector_type = "duckdb"

    @pytest.fixture
    def contract_target(self, tmp_path: Path) -> DuckDBTarget:
        return DuckDBTarget(tmp_path)
