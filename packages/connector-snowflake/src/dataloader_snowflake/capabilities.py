"""What the snowflake connector can do, as data (importable without pyarrow or the driver)."""

from __future__ import annotations

from dataloader.connector import Capabilities

CAPABILITIES = Capabilities.committing(
    # Lists load into ARRAY columns but read back as JSON text, so "list" is not claimed.
    # Integers of every width read back as int64 (Snowflake has one NUMBER type).
    without_types=("list",),
    notes=(
        "integer columns read back as int64 (NUMBER(p,0) with p <= 19), wider NUMBERs as decimal128",
        "VARIANT, OBJECT and ARRAY columns read as JSON text tagged with field metadata snowflake_type",
        "TIMESTAMP_TZ and TIMESTAMP_LTZ read as timestamp(UTC): the instant is kept, the offset is not",
    ),
)
