"""The recipe keys of a ``type: postgres`` section."""

from __future__ import annotations

from typing import Literal

from dataloader.config import ConfigModel, ConnectorConfig
from pydantic import Field, field_validator, model_validator


class PartitionConfig(ConfigModel):
    """Split a source read into ``partitions`` key ranges of ``column``, read concurrently.

    Used only when the run's ``runtime.parallelism`` is above 1; the column must be an integer,
    numeric, date or timestamp column (ideally indexed).
    """

    column: str
    partitions: int = Field(default=4, ge=1, le=256)


class PostgresConfig(ConnectorConfig):
    """Connection plus what to read or write.

    Connection: either ``dsn`` (a libpq connection string or URI) or the separate keys; separate
    keys given next to ``dsn`` override it. ``table`` is ``schema.table`` (``public`` when no
    schema is given; set ``schema`` explicitly for a table whose name contains a dot). A source
    takes ``table`` or ``query``; a destination takes ``table``.
    """

    dsn: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = None
    user: str | None = None
    password: str | None = None
    sslmode: str | None = None
    connect_timeout: int = Field(default=10, ge=1)
    #: TCP keepalives are always on: seconds of silence before the first probe, seconds between
    #: probes, and unanswered probes before the connection counts as dead.
    keepalives_idle: int = Field(default=30, ge=1)
    keepalives_interval: int = Field(default=10, ge=1)
    keepalives_count: int = Field(default=3, ge=1)
    #: Seconds sent data may stay unacknowledged, and the longest wait for the reply to COMMIT,
    #: before the connection counts as dead (so a silent network fails in bounded time).
    network_timeout: int = Field(default=60, ge=1)
    #: Seconds any one statement may run on the server (``statement_timeout``), except the COPY
    #: streams that carry the rows (they last as long as the load). None: no limit.
    statement_timeout: float | None = Field(default=None, gt=0)
    #: How many times a connection is attempted when the server is unreachable or restarting.
    connect_attempts: int = Field(default=5, ge=1)
    #: Seconds before the first retry; doubles each attempt up to ``retry_max_delay``.
    retry_initial_delay: float = Field(default=0.5, ge=0)
    retry_max_delay: float = Field(default=8.0, ge=0)

    schema_: str | None = Field(default=None, alias="schema")
    table: str | None = None
    query: str | None = None
    partition: PartitionConfig | None = None
    #: How ``write_mode: overwrite`` empties the table inside the run's transaction: ``truncate``
    #: (other sessions wait for the table until COMMIT) or ``delete`` (they keep reading the old
    #: rows until COMMIT; slower, and leaves dead rows for VACUUM).
    overwrite_method: Literal["truncate", "delete"] = "truncate"
    #: PostgreSQL text cannot hold the NUL character (U+0000): ``error`` refuses such a value
    #: naming its column and row, before anything is committed; ``remove`` drops the character.
    nul_bytes: Literal["error", "remove"] = "error"

    @field_validator("query")
    @classmethod
    def _query_without_terminator(cls, value: str | None) -> str | None:
        """The query is wrapped in ``COPY (...)``, where a trailing semicolon is a syntax error."""
        return value.strip().rstrip(";").rstrip() if value is not None else None

    @model_validator(mode="after")
    def _table_or_query(self) -> PostgresConfig:
        if self.table and self.query:
            raise ValueError("give either `table` or `query`, not both")
        if not self.table and not self.query:
            raise ValueError("needs `table` (schema.table) or, for a source, `query`")
        if self.incremental is not None and self.incremental.strategy == "cursor" and not self.incremental.cursor_column:
            raise ValueError("incremental strategy cursor needs `cursor_column`")
        if self.incremental is not None and self.incremental.strategy != "cursor":
            raise ValueError(f"postgres supports incremental strategy 'cursor' only, not '{self.incremental.strategy}'")
        return self

    def qualified_table(self) -> tuple[str, str]:
        """``(schema, table)`` of ``table``; the first dot separates them unless ``schema`` is set."""
        assert self.table is not None
        if self.schema_:
            return self.schema_, self.table
        schema, dot, name = self.table.partition(".")
        return (schema, name) if dot and schema and name else ("public", self.table)

    def describe_target(self) -> str:
        if self.query:
            return "query"
        schema, name = self.qualified_table()
        return f"table {schema}.{name}"
