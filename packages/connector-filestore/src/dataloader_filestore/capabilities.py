"""What the filestore connector can do, as data (importable without fsspec or pyarrow).

The capabilities describe the connector with its richest format, Parquet, with which every type
family round trips; CSV and JSON keep values but not every type.
"""

from __future__ import annotations

from dataloader.connector import Capabilities

CAPABILITIES = Capabilities.committing(
    write_modes=("append", "overwrite"),
    incremental=("modified_time",),
    locks=True,
    notes=(
        "merge is not supported: files cannot be updated in place",
        "csv, json and jsonl do not keep Arrow types; parquet does",
    ),
)
