"""The recipe keys of a ``type: snowflake`` section."""

from __future__ import annotations

from typing import Literal

from dataloader.config import ConnectorConfig
from pydantic import Field, field_validator, model_validator

from dataloader_snowflake.names import TableName, parse_identifier, parse_table_name


class SnowflakeConfig(ConnectorConfig):
    """Connection plus what to read or write.

    Connection: ``account`` and ``user``, authenticated by ``password``, a key pair
    (``private_key_file`` or inline ``private_key`` PEM text, optionally ``private_key_passphrase``)
    or another ``authenticator`` (``externalbrowser``, ``oauth`` with ``token``, an Okta URL ...).
    ``host``/``port``/``protocol`` reach a private endpoint or a local emulator.

    What: ``table`` is ``name``, ``schema.name`` or ``database.schema.name`` (the connection's
    ``database`` and ``schema`` fill in the rest). An unquoted name part is case-insensitive, as in
    Snowflake SQL (``customers`` is ``CUSTOMERS``); a part in double quotes keeps its case. A source
    reads ``table`` or ``query``; a destination writes ``table``.
    """

    account: str
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    authenticator: str | None = None
    token: str | None = Field(default=None, repr=False)
    private_key: str | None = Field(default=None, repr=False)
    private_key_file: str | None = None
    private_key_passphrase: str | None = Field(default=None, repr=False)
    role: str | None = None
    warehouse: str | None = None
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["https", "http"] | None = None
    #: Session parameters set at login, e.g. ``{QUERY_TAG: nightly-load}``.
    session_parameters: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    login_timeout: int = Field(default=60, ge=1)
    network_timeout: int | None = Field(default=None, ge=1)

    table: str | None = None
    query: str | None = None
    #: The internal named stage (in the target's schema) that loads go through; created if missing.
    #: Each begin() uploads under its own prefix, ``<recipe>/<run id>/<n>-<random>/``.
    stage: str = "_dataloader_stage"
    #: Columns (of a table the destination creates) to create as VARIANT from JSON text, loaded
    #: with ``PARSE_JSON``. A column that already is VARIANT/OBJECT/ARRAY is loaded that way anyway.
    variant_columns: list[str] = Field(default_factory=list)
    #: Upload a Parquet part once it holds this many MiB (bounds the memory and the local disk used).
    part_size_mb: int = Field(default=64, ge=1, le=4096)

    @field_validator("account")
    @classmethod
    def _account_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("account is empty; give the account identifier, e.g. myorg-myaccount")
        return value.strip()

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip(";").rstrip()
        if not value:
            raise ValueError("query is empty")
        return value

    @field_validator("table")
    @classmethod
    def _table_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_table_name(value)
        return value

    @field_validator("stage")
    @classmethod
    def _stage_parses(cls, value: str) -> str:
        parse_identifier(value.lstrip("@"))
        return value.lstrip("@")

    @model_validator(mode="after")
    def _check(self) -> SnowflakeConfig:
        if self.table and self.query:
            raise ValueError("give either `table` or `query`, not both")
        if not self.table and not self.query:
            raise ValueError("needs `table` (name, schema.name or database.schema.name) or, for a source, `query`")
        if self.private_key and self.private_key_file:
            raise ValueError("give either `private_key` (PEM text) or `private_key_file`, not both")
        keyed = bool(self.private_key or self.private_key_file)
        if keyed and self.password:
            raise ValueError("give either `password` or a private key, not both")
        if self.private_key_passphrase and not keyed:
            raise ValueError("`private_key_passphrase` needs `private_key` or `private_key_file`")
        if not (self.password or keyed or self.authenticator or self.token):
            raise ValueError(
                "needs a way to authenticate: `password`, `private_key_file` / `private_key`, or `authenticator`"
            )
        if not self.user and not (self.authenticator or "").lower() == "oauth":
            raise ValueError("needs `user` (the Snowflake login name)")
        if self.incremental is not None and self.incremental.strategy != "cursor":
            raise ValueError(f"snowflake supports incremental strategy 'cursor' only, not '{self.incremental.strategy}'")
        if self.incremental is not None and not self.incremental.cursor_column:
            raise ValueError("incremental strategy cursor needs `cursor_column`")
        return self

    def table_name(self) -> TableName:
        """``table`` with the connection's database and schema filled in."""
        assert self.table is not None
        return parse_table_name(self.table).within(self.database, self.schema_)

    def describe_target(self) -> str:
        return "query" if self.query else f"table {self.table_name().display()}"

    def describe_account(self) -> str:
        via = f" via {self.host}" + (f":{self.port}" if self.port else "") if self.host else ""
        return f"account {self.account}{via}"


__all__ = ["SnowflakeConfig"]
