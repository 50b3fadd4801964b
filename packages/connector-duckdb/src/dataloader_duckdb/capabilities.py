"""What the duckdb connector can do, as data (importable without the duckdb driver or pyarrow)."""

from __future__ import annotations

from dataloader.connector import TYPE_FAMILIES, Capabilities

CAPABILITIES = Capabilities(
    read=True,
    write=True,
    write_modes=frozenset({"append", "overwrite", "merge"}),
    incremental_strategies=frozenset({"cursor"}),
    transactional=True,
    commits_state=True,
    locks=True,
    types=frozenset(TYPE_FAMILIES) - {"json"},  # JSON text stays VARCHAR
    preserves_types=True,
    notes=("merge replaces the whole row of a matching key; NULL keys match each other",),
)
