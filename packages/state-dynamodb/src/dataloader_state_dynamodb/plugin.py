"""Entry point of dataloader-state-dynamodb: the ``dynamodb`` state backend.

Cheap to import: boto3 loads only when the backend first talks to DynamoDB.
"""

from __future__ import annotations

from typing import Any

from dataloader import hookimpl

from dataloader_state_dynamodb.config import DynamoDBStateConfig


def build_backend(config: DynamoDBStateConfig) -> Any:
    from dataloader_state_dynamodb.backend import DynamoDBStateBackend

    return DynamoDBStateBackend(config)


@hookimpl
def register_state_backends(register: Any) -> None:
    register("dynamodb", build_backend, config=DynamoDBStateConfig)
