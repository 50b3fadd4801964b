"""What the filestore connector can do, as data (importable without fsspec or pyarrow).

The capabilities describe the connector with its richest format, Parquet, with which every type
family round trips; CSV and JSON keep values but not every type.
"""

from __future__ import annotations

from dataloader.connector import TYPE_FAMILIES, Capabilities

CAPABILITIES = Capabilities(
    read=True,
    write=True,
    write_modes=frozenset({"append", "overwrite"}),
    incremental_strategies=frozenset({"modified_time"}),
    transactional=True,
    commits_state=True,
    locks=True,
    types=frozenset(TYPE_FAMILIES),
    preserves_types=True,
    notes=(
        "merge is not supported: files cannot be updated in place",
        "csv, json and jsonl do not keep Arrow types; parquet does",
    ),
)
