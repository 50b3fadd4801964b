"""What the bigquery connector can do, as data (importable without the client libraries)."""

from __future__ import annotations

from dataloader.connector import Capabilities

CAPABILITIES = Capabilities.committing(
    notes=(
        "int8/int16/int32 are stored as INT64 and float32 as FLOAT64; they read back widened",
        "NUMERIC is decimal128(38,9), BIGNUMERIC decimal256(76,38); wider decimals are refused",
        "timestamps without a time zone are DATETIME, with one TIMESTAMP (UTC); nanoseconds are cut to microseconds",
        "BigQuery has no NULL array: a NULL list is stored as an empty ARRAY",
    ),
)
