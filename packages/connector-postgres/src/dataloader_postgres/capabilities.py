"""What the postgres connector can do, as data (importable without pyarrow or psycopg2)."""

from __future__ import annotations

from dataloader.connector import TYPE_FAMILIES, Capabilities

CAPABILITIES = Capabilities(
    read=True,
    write=True,
    write_modes=frozenset({"append", "overwrite", "merge"}),
    incremental_strategies=frozenset({"cursor"}),
    transactional=True,
    commits_state=True,
    # int8 is written as smallint and reads back as int16, so it is not claimed.
    types=frozenset(TYPE_FAMILIES) - {"int8"},
    preserves_types=True,
    notes=(
        "numeric without a declared precision reads as decimal128(38,10); values that do not fit are an error",
        "uuid, json, jsonb and enum columns read as strings tagged with field metadata pg_type",
    ),
)
