"""The keys of ``state: {backend: dynamodb, ...}``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class DynamoDBStateConfig(BaseModel):
    """Where the state table is, and how to reach it.

    Without ``key``/``secret`` the standard AWS credential chain applies (environment, profile,
    instance role). ``endpoint_url`` points at a DynamoDB-compatible server (local testing).
    """

    model_config = ConfigDict(extra="forbid")

    table: str = Field(default="dataloader_state", min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    token: SecretStr | None = None
    #: Create the table (on-demand billing, key ``pk``) when it does not exist.
    create_table: bool = False
