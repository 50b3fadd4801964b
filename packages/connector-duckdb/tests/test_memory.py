"""A large load streams: two million rows pass with a bounded peak memory.

The load runs in a subprocess that reports its own peak resident set size (``ru_maxrss``), so the
number covers Python, Arrow and DuckDB together and nothing else the test process holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import Warehouse
from dataloader_duckdb.writer import MemoryLimit

ROWS = 2_000_000
LIMIT_MIB = 400


def test_two_million_rows_load_under_400_mib(warehouse: Warehouse, tmp_path: Path) -> None:
    con = duckdb.connect(warehouse.source_db)
    try:
        con.execute(
            f"""
            CREATE TABLE src AS
            SELECT range AS id,
                   'customer ' || range || ' with a longer text value, ümlaut' AS name,
                   (range % 100000) / 100.0 AS amount,
                   TIMESTAMP '2024-01-01' + to_seconds(range) AS updated_at,
                   range % 3 = 0 AS active
            FROM range({ROWS})
            """
        )
    finally:
        con.close()
    script = tmp_path / "big_load.py"
    script.write_text(_BIG_LOAD_SCRIPT)
    completed = subprocess.run(
        [sys.executable, str(script), warehouse.source_db, warehouse.target_db, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DATALOADER_HISTORY": str(tmp_path / "runs.db")},
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["rows_written"] == ROWS
    assert warehouse.query("SELECT count(*), count(DISTINCT id), sum(active::INT) FROM big") == [(ROWS, ROWS, 666_667)]
    print(f"peak RSS of a {ROWS:,}-row DuckDB-to-DuckDB load: {report['peak_rss_mib']:.0f} MiB")
    assert report["peak_rss_mib"] < LIMIT_MIB


_BIG_LOAD_SCRIPT = textwrap.dedent(
    """
    import json
    import resource
    import sys
    from pathlib import Path

    import dataloader_duckdb.plugin
    from dataloader.engine import run_recipe
    from dataloader.plugins import PluginHost
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    source_db, target_db, state_dir = sys.argv[1:4]
    host = PluginHost(load_entrypoints=False)
    host.register(dataloader_duckdb.plugin, name="duckdb")
    recipe = Recipe.from_dict(
        {
            "name": "big",
            "source": {"type": "duckdb", "database": source_db, "table": "src"},
            "destination": {"type": "duckdb", "database": target_db, "table": "big", "write_mode": "overwrite"},
        }
    )
    result = run_recipe(recipe, LocalStateBackend(Path(state_dir)), host=host, history=False)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows_written": result.rows_written, "peak_rss_mib": peak_kib / 1024}))
    """
)


def test_a_value_bigger_than_the_memory_limit_still_loads(warehouse: Warehouse) -> None:
    """The limit grows to fit the biggest batch: DuckDB holds a whole value in one block."""
    big = "x" * (40 * 1024 * 1024)
    warehouse.seed(pa.table({"id": [1, 2], "doc": [big, "small"]}))
    warehouse.run({"table": "docs", "memory_limit": "16MB"}, batch_size=1)
    assert warehouse.query("SELECT id, length(doc) FROM docs ORDER BY id") == [(1, len(big)), (2, 5)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64MB", 64_000_000), ("1.5 GiB", 1536 * 1024**2), ("512kib", 512 * 1024), ("100", 100), ("lots", None)],
)
def test_memory_limit_sizes_are_read_like_duckdb_reads_them(text: str, expected: int | None) -> None:
    assert MemoryLimit.parse(text) == expected
