"""A large load streams: two million rows pass with a bounded peak memory, and never fail for memory.

The load runs in a subprocess that reports its own peak resident set size (``ru_maxrss``), so the
number covers Python, Arrow and DuckDB together and nothing else the test process holds. The
merge and wide-table cases run through the ``dataloader`` command at default settings.
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
from conftest import Warehouse, run_cli, write_recipe
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


def _merge_recipe(folder: Path, extra: str = "") -> Path:
    return write_recipe(
        folder,
        "merge",
        f"""
name: merge
source: {{type: duckdb, database: src.duckdb, table: src}}
destination: {{type: duckdb, database: dst.duckdb, table: big, write_mode: merge, merge_keys: [id]{extra}}}
""",
    )


def _seed_merge(folder: Path, rows: int) -> None:
    """``rows`` new rows; the table holds ``rows`` old ones, half of them with keys the new rows bring."""
    con = duckdb.connect(str(folder / "src.duckdb"))
    try:
        con.execute(f"CREATE TABLE src AS SELECT range AS id, 'new ' || range AS name, range / 7 AS amount FROM range({rows})")
    finally:
        con.close()
    con = duckdb.connect(str(folder / "dst.duckdb"))
    try:
        con.execute(f"CREATE TABLE big AS SELECT range + {rows // 2} AS id, 'old' AS name, 0.0 AS amount FROM range({rows})")
    finally:
        con.close()


MERGE_ROWS = 1_000_000


def test_a_million_row_merge_into_a_million_row_table_completes_at_defaults(tmp_path: Path) -> None:
    """48MB (the load's limit) failed here with "failed to pin block"; ``auto`` lifts it for the merge."""
    _seed_merge(tmp_path, MERGE_ROWS)
    done = run_cli("run", str(_merge_recipe(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Out of Memory" not in done.stdout + done.stderr
    con = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    try:
        counts = con.execute(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE name LIKE 'new %'), "
            "count(*) FILTER (WHERE name = 'old' AND id >= ?) FROM big",
            [MERGE_ROWS],
        ).fetchall()
    finally:
        con.close()
    # Keys 0..999,999 are the new rows; the old rows of keys 1,000,000..1,499,999 stay.
    assert counts == [(MERGE_ROWS * 3 // 2, MERGE_ROWS * 3 // 2, MERGE_ROWS, MERGE_ROWS // 2)]
    # DuckDB's spill directory next to the database file is gone after the run.
    assert not (tmp_path / "dst.duckdb.tmp").exists()


def test_out_of_memory_names_the_recipe_key_and_the_temp_directory(tmp_path: Path) -> None:
    """A limit the recipe fixed is kept; when DuckDB cannot work within it, one line says what to raise."""
    _seed_merge(tmp_path, MERGE_ROWS)
    before = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    try:
        expected = before.execute("SELECT count(*), sum(hash(id, name)) FROM big").fetchall()
    finally:
        before.close()
    done = run_cli("run", str(_merge_recipe(tmp_path, ", memory_limit: 48MB")), cwd=tmp_path)
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "DuckDB ran out of memory" in output
    assert "raise destination.memory_limit in the recipe (it is '48MB'" in output
    assert f"DuckDB spills to {tmp_path / 'dst.duckdb.tmp'}" in output
    assert "Traceback" not in output and "Possible solutions" not in output
    after = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    try:
        assert after.execute("SELECT count(*), sum(hash(id, name)) FROM big").fetchall() == expected
        assert after.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_dataloader%'").fetchall() == [(0,)]
    finally:
        after.close()


def test_a_wide_table_loads_at_defaults(tmp_path: Path) -> None:
    """DuckDB pins a block per column and thread: 300 columns failed under 48MB and under 128MB."""
    columns = ", ".join(f"range * {i} AS c{i}" for i in range(300))
    con = duckdb.connect(str(tmp_path / "src.duckdb"))
    try:
        con.execute(f"CREATE TABLE src AS SELECT range AS id, {columns} FROM range(30000)")
    finally:
        con.close()
    recipe = write_recipe(
        tmp_path,
        "wide",
        """
name: wide
source: {type: duckdb, database: src.duckdb, table: src}
destination: {type: duckdb, database: dst.duckdb, table: wide}
runtime: {batch_size: 1000}
""",
    )
    done = run_cli("run", str(recipe), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    con = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), sum(c299) FROM wide").fetchall() == [(30000, 299 * 29999 * 30000 // 2)]
    finally:
        con.close()


_MEASURED_CLI = (
    "import json, resource, sys\n"
    "from dataloader.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code or 0\n"
    "else:\n"
    "    code = 0\n"
    "print(json.dumps({'code': code, 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DATALOADER_SLOW_TESTS"), reason="2M rows: set DATALOADER_SLOW_TESTS=1")
def test_two_million_row_merge_into_a_two_million_row_table_at_defaults(tmp_path: Path) -> None:
    _seed_merge(tmp_path, 2 * MERGE_ROWS)
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, "run", str(_merge_recipe(tmp_path))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DATALOADER_HISTORY": str(tmp_path / "runs.db")},
        timeout=600,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, completed.stdout + completed.stderr
    con = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM big").fetchall() == [(3 * MERGE_ROWS,) * 2]
    finally:
        con.close()
    print(f"peak RSS of a 2M-row merge into a 2M-row DuckDB table: {report['peak_rss_mib']:.0f} MiB")
    assert report["peak_rss_mib"] < 600
