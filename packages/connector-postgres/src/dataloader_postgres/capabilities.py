"""What the postgres connector can do, as data (importable without pyarrow or psycopg2)."""

from __future__ import annotations

from dataloader.connector import Capabilities

CAPABILITIES = Capabilities.committing(
    locks=True,
    # int8 is written as smallint and reads back as int16, so it is not claimed.
    without_types=("int8",),
    notes=(
        "numeric without a declared precision reads as decimal128(38,10); values that do not fit are an error",
        "uuid, json, jsonb and enum columns read as strings tagged with field metadata pg_type",
    ),
)
