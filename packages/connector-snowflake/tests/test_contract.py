"""The core's connector contract suite, run against the fakesnow emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dataloader.testing import ConnectorContractSuite
from target import SnowflakeTarget


class TestContract(ConnectorContractSuite):
    connector_type = "snowflake"

    @pytest.fixture
    def contract_target(self, section: Callable[..., dict[str, Any]]) -> SnowflakeTarget:
        return SnowflakeTarget(section)
