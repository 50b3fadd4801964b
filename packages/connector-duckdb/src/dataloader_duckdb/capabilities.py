"""What the duckdb connector can do, as data (importable without the duckdb driver or pyarrow)."""

from __future__ import annotations

from dataloader.connector import Capabilities

CAPABILITIES = Capabilities.committing(
    locks=True,
    without_types=("json",),  # JSON text stays VARCHAR
    notes=("merge replaces the whole row of a matching key; NULL keys match each other",),
)
