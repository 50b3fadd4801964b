"""The widening table that decides whether a column may receive another type."""

from __future__ import annotations

import pytest
from dataloader_duckdb.types import reconcile


@pytest.mark.parametrize(
    ("existing", "incoming", "result"),
    [
        ("INTEGER", "INTEGER", "INTEGER"),
        ("BIGINT", "INTEGER", "BIGINT"),  # narrower values fit
        ("INTEGER", "BIGINT", "BIGINT"),  # wider values widen the column
        ("SMALLINT", "UTINYINT", "SMALLINT"),
        ("TINYINT", "UTINYINT", "SMALLINT"),
        ("FLOAT", "DOUBLE", "DOUBLE"),
        ("DOUBLE", "BIGINT", "DOUBLE"),
        ("BIGINT", "DOUBLE", "DOUBLE"),
        ("DECIMAL(10,2)", "DECIMAL(12,4)", "DECIMAL(12,4)"),
        ("DECIMAL(18,2)", "INTEGER", "DECIMAL(18,2)"),
        ("DECIMAL(10,2)", "DECIMAL(10,4)", "DECIMAL(12,4)"),
        ("UBIGINT", "BIGINT", "HUGEINT"),
        ("DATE", "TIMESTAMP", "TIMESTAMP"),
        ("TIMESTAMP", "TIMESTAMP_MS", "TIMESTAMP"),
        ("INTEGER[]", "BIGINT[]", "BIGINT[]"),
        ("VARCHAR", '"NULL"', "VARCHAR"),
        ('"NULL"', "DATE", "DATE"),
    ],
)
def test_compatible_types(existing: str, incoming: str, result: str) -> None:
    assert reconcile(existing, incoming) == result


@pytest.mark.parametrize(
    ("existing", "incoming"),
    [
        ("VARCHAR", "INTEGER"),
        ("INTEGER", "VARCHAR"),
        ("BOOLEAN", "INTEGER"),
        ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"),
        ("UHUGEINT", "HUGEINT"),
        ("DECIMAL(38,0)", "DECIMAL(38,10)"),
        ("BLOB", "VARCHAR"),
        ("INTEGER[]", "VARCHAR[]"),
        ("DATE", "TIME"),
    ],
)
def test_incompatible_types(existing: str, incoming: str) -> None:
    assert reconcile(existing, incoming) is None
