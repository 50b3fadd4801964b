"""The Partitions seam: key ranges planned under one exported snapshot, read by the local executor in parallel."""

from __future__ import annotations

import duckdb
from dataloader.engine import run_recipe
from dataloader.recipe import Recipe
from dataloader.state import LocalStateBackend, State
from dataloader.testing import partition_threads


def make_table(pg, name: str, rows: int) -> None:
    with pg.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(f"CREATE TABLE {name} (id bigint, label text)")
        cur.execute(f"INSERT INTO {name} SELECT g, 'l' || g FROM generate_series(1, {rows}) g")
        cur.execute(f"INSERT INTO {name} VALUES (NULL, 'no key')")


def test_partitions_cover_every_row_once_and_see_one_snapshot(pg, section, tmp_path):
    from dataloader.plugins import get_host

    make_table(pg, "seam_rows", 1000)
    recipe = Recipe.from_dict({
        "name": "seam",
        "source": section(table="seam_rows", partition={"column": "id", "partitions": 4}),
        "destination": {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "loaded"},
    })
    source = get_host().registry.get("connector", "postgres").build(recipe.source)
    source.open()
    try:
        parts = source.partitions(State())
        assert len(parts) == 4 and len({p.spec["snapshot"] for p in parts}) == 1
        # Rows added after the plan are not seen: every partition reads the planner's snapshot.
        with pg.cursor() as cur:
            cur.execute("INSERT INTO seam_rows SELECT g, 'late' FROM generate_series(5000, 5100) g")
        ids = [i for p in parts for b in source.read_partition(p, State()) for i in b.to_arrow().column("id").to_pylist()]
    finally:
        source.close()
    assert sorted(i for i in ids if i is not None) == list(range(1, 1001)) and ids.count(None) == 1


def test_the_local_executor_reads_partitions_concurrently_with_parallelism(pg, section, tmp_path, monkeypatch):
    from dataloader_postgres.connector import PostgresConnector

    make_table(pg, "seam_parallel", 5000)
    threads = partition_threads(monkeypatch, PostgresConnector)
    result = run_recipe(
        Recipe.from_dict({
            "name": "seam_parallel",
            "source": section(table="seam_parallel", partition={"column": "id", "partitions": 4}),
            "destination": {"type": "duckdb", "database": str(tmp_path / "out.duckdb"), "table": "loaded"},
            "runtime": {"parallelism": 2, "batch_size": 500},
        }),
        LocalStateBackend(tmp_path / "state"), history=False,
    )
    assert result.rows_written == 5001
    assert len(threads) == 2 and all(name.startswith("dataloader-reader-") for name in threads)
    con = duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True)
    got = con.execute("SELECT count(DISTINCT id), count(*), sum(id) FROM loaded").fetchone()
    con.close()
    assert got == (5000, 5001, 5000 * 5001 // 2)
