"""The dynamodb backend against the state-backend contract suite, on moto's server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dataloader.testing_state import SharedStateRunSuite, StateBackendContractSuite


class TestDynamoDBStateContract(StateBackendContractSuite):
    backend_name = "dynamodb"

    @pytest.fixture
    def state_options(self, dynamo_options: dict[str, Any]) -> dict[str, Any]:
        return dynamo_options

    @pytest.fixture
    def raw_store(self, dynamo_client: Any, dynamo_options: dict[str, Any]):
        def dump() -> str:
            items = dynamo_client.scan(TableName=dynamo_options["table"], ConsistentRead=True)["Items"]
            return json.dumps(items, sort_keys=True)

        return dump


class TestDynamoDBSharedRuns(SharedStateRunSuite):
    """The same recipe from two working directories against one DynamoDB table."""

    backend_name = "dynamodb"

    @pytest.fixture
    def state_options(self, dynamo_options: dict[str, Any]) -> dict[str, Any]:
        return dynamo_options
