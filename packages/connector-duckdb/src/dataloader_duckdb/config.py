"""The recipe keys of a ``type: duckdb`` section."""

from __future__ import annotations

from typing import ClassVar

from dataloader.config import ConnectorConfig
from pydantic import Field, field_validator, model_validator

from dataloader_duckdb.names import TableName, parse_table_name


class DuckDBConfig(ConnectorConfig):
    """``database``: a file path or ``:memory:``. ``table``: ``name`` or ``schema.name``.
    ``query``: any DuckDB ``SELECT`` (sources only), read instead of a table.

    A source sets exactly one of ``table`` and ``query``; a destination sets ``table``.
    A relative ``database`` in a recipe file is relative to that file.
    """

    recipe_paths: ClassVar[tuple[str, ...]] = ("database",)

    database: str
    table: str | None = None
    query: str | None = None
    #: DuckDB's ``memory_limit`` for a destination on a database file: past it, DuckDB spills an
    #: uncommitted load to its temp directory instead of growing. ``auto``: 48MB while rows stream
    #: in (a whole run stays under 300 MiB), raised for what DuckDB cannot spill (wide rows, big
    #: values) and lifted to DuckDB's own default (80 % of RAM) for a merge's publish step. A size
    #: (``256MB``) is used as given, raised only for what DuckDB cannot spill; ``null`` keeps
    #: DuckDB's default throughout.
    memory_limit: str | None = "auto"
    #: A destination's rows are read back in load order (without ``ORDER BY``) only when this is
    #: true. Off by default, as in any warehouse: keeping the order makes DuckDB buffer the rows of
    #: a parallel insert, which costs memory (or, under ``memory_limit``, speed).
    preserve_insertion_order: bool = False
    #: Source table only: split the read into this many ``rowid`` ranges, the source's partitions
    #: (read ``runtime.parallelism`` at a time, or one task each by a remote executor such as dask).
    partitions: int = Field(default=1, ge=1, le=256)

    @field_validator("database")
    @classmethod
    def _database_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("database must be a file path or ':memory:'")
        return value

    @field_validator("table")
    @classmethod
    def _table_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_table_name(value)
        return value

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().rstrip(";").strip():
            raise ValueError("query is empty")
        return value

    @model_validator(mode="after")
    def _table_xor_query(self) -> DuckDBConfig:
        if self.table and self.query:
            raise ValueError("set either 'table' or 'query', not both")
        if not self.table and not self.query:
            raise ValueError("set 'table' (or, for a source, 'query')")
        return self

    @property
    def table_name(self) -> TableName | None:
        return parse_table_name(self.table) if self.table else None


__all__ = ["DuckDBConfig"]
