"""Kill the loader with SIGKILL at random points; after a re-run every row is there exactly once.

Each scenario first runs once with ``DATALOADER_FAULT_LOG`` to list the run's crash points (batches
read and written, just before and after the destination's commit, halfway through each state file
write). It then picks ``POINTS`` of them with a seeded random generator and, for each, starts from
a fresh destination and state, runs ``dataloader run`` with ``DATALOADER_FAULT_AT=<point>`` (the
process kills itself with SIGKILL there), re-runs it without faults (alternately with and without
``--resume``), and checks that the destination holds the source's rows exactly once, as a
multiset, and that the state's cursor equals the source's maximum. The seed and the points are
printed, so a failure can be replayed with ``DATALOADER_FAULT_SEED``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dataloader_duckdb")
pytest.importorskip("dataloader_filestore")

POINTS = int(os.environ.get("DATALOADER_FAULT_POINTS", "20"))
SEED = int(os.environ.get("DATALOADER_FAULT_SEED", "20261125"))
ROWS = 3000
BATCH = 400


def source_rows() -> list[tuple[int, str, int]]:
    """(id, name, updated): unique ids, so "exactly once" is a multiset equality on whole rows."""
    return [(i, f"name {i} é,\"q\"", i // 7) for i in range(1, ROWS + 1)]


def write_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "updated"])
        writer.writerows(source_rows())


class Scenario:
    def __init__(self, name: str, source: str, destination: str, mode: str, checkpoint_every: int | None = None) -> None:
        self.name, self.source, self.destination, self.mode = name, source, destination, mode
        self.checkpoint_every = checkpoint_every

    def __repr__(self) -> str:
        return self.name


SCENARIOS = [
    Scenario("csv-duckdb-append", "csv", "duckdb", "append"),
    Scenario("csv-duckdb-merge", "csv", "duckdb", "merge"),
    Scenario("csv-postgres-append", "csv", "postgres", "append"),
    Scenario("csv-postgres-merge", "csv", "postgres", "merge"),
    Scenario("postgres-postgres-append", "postgres", "postgres", "append"),
    Scenario("postgres-postgres-merge", "postgres", "postgres", "merge"),
    Scenario("csv-duckdb-append-checkpointed", "csv", "duckdb", "append", checkpoint_every=2),
    Scenario("csv-postgres-append-checkpointed", "csv", "postgres", "append", checkpoint_every=2),
    Scenario("postgres-postgres-append-checkpointed", "postgres", "postgres", "append", checkpoint_every=2),
    Scenario("csv-parquet-append", "csv", "parquet", "append"),
    Scenario("csv-parquet-append-checkpointed", "csv", "parquet", "append", checkpoint_every=BATCH),
    Scenario("postgres-parquet-append-checkpointed", "postgres", "parquet", "append", checkpoint_every=BATCH),
    Scenario("csv-s3parquet-append-checkpointed", "csv", "s3parquet", "append", checkpoint_every=BATCH),
]


class Harness:
    def __init__(self, scenario: Scenario, root: Path, dataloader_bin: str, pg_dsn: str | None, s3: Any = None) -> None:
        self.s, self.root, self.bin, self.dsn, self.s3 = scenario, root, dataloader_bin, pg_dsn, s3
        self.csv = root / "source.csv"
        write_csv(self.csv)
        if scenario.source == "postgres" or scenario.destination == "postgres":
            assert pg_dsn, "this scenario needs PostgreSQL"
        if scenario.source == "postgres":
            self._seed_pg_source()

    def _pg(self) -> Any:
        import psycopg2

        con = psycopg2.connect(self.dsn)
        con.autocommit = True
        return con

    def _seed_pg_source(self) -> None:
        con = self._pg()
        with con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS public.fault_source")
            cur.execute("CREATE TABLE public.fault_source (id bigint primary key, name text, updated bigint)")
            with self.csv.open(encoding="utf-8") as handle:
                cur.copy_expert("COPY public.fault_source FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
        con.close()

    def fresh(self, attempt: str) -> Path:
        work = self.root / attempt
        work.mkdir()
        if self.s.destination == "postgres":
            con = self._pg()
            with con.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS public.fault_target")
                cur.execute("DROP TABLE IF EXISTS public._dataloader_state")
            con.close()
        return work

    def recipe(self, work: Path) -> Path:
        if self.s.source == "csv":
            source = {"type": "filestore", "path": str(self.csv), "format": "csv", "incremental": {"strategy": "modified_time"}}
        else:
            source = {
                "type": "postgres",
                "dsn": self.dsn,
                "table": "public.fault_source",
                "incremental": {"strategy": "cursor", "cursor_column": "updated", "primary_key": ["id"]},
            }
        if self.s.destination == "duckdb":
            destination: dict[str, Any] = {"type": "duckdb", "database": str(work / "target.duckdb"), "table": "main.fault_target"}
        elif self.s.destination == "parquet":
            destination = {"type": "filestore", "path": str(work / "dataset"), "format": "parquet", "max_rows_per_file": 500}
        elif self.s.destination == "s3parquet":
            destination = {"type": "filestore", "path": self.s3.url(work.name), "format": "parquet", "max_rows_per_file": 500, **self.s3.options}
        else:
            destination = {"type": "postgres", "dsn": self.dsn, "table": "public.fault_target"}
        destination["write_mode"] = self.s.mode
        if self.s.mode == "merge":
            destination["merge_keys"] = ["id"]
        recipe = {
            "name": f"faults_{self.s.name.replace('-', '_')}",
            "source": source,
            "transform": {"steps": [{"type": "cast", "columns": {"id": "int", "updated": "int"}}]},
            "destination": destination,
            "runtime": {"batch_size": BATCH, "retries": {"max_attempts": 1}},
        }
        if self.s.checkpoint_every:
            recipe["runtime"]["checkpoint_every"] = self.s.checkpoint_every
        path = work / "recipe.yaml"
        path.write_text(json.dumps(recipe), encoding="utf-8")  # JSON is YAML
        return path

    def run(self, work: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
        full_env = {**inherited, "DATALOADER_HISTORY": str(work / "runs.db"), **(env or {})}
        return subprocess.run(
            [self.bin, "run", str(work / "recipe.yaml"), "--state-dir", str(work / "state"), "--log-format", "json", *extra],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
            env=full_env,
        )

    def target_rows(self, work: Path) -> list[tuple[int, str, int]]:
        if self.s.destination in ("parquet", "s3parquet"):
            return self._dataset_rows(work)
        if self.s.destination == "duckdb":
            import duckdb

            with duckdb.connect(str(work / "target.duckdb"), read_only=True) as con:
                return [tuple(r) for r in con.execute("select id, name, updated from main.fault_target").fetchall()]
        con = self._pg()
        with con.cursor() as cur:
            cur.execute("select id, name, updated from public.fault_target")
            rows = [tuple(r) for r in cur.fetchall()]
        con.close()
        return rows

    def _dataset_rows(self, work: Path) -> list[tuple[int, str, int]]:
        """Every row of every part the manifest lists (a part listed twice counts twice)."""
        import pyarrow.parquet as pq

        if self.s.destination == "parquet":
            root, opener = str(work / "dataset"), open
        else:
            root, opener = self.s3.key(work.name), self.s3.fs.open
        try:
            with opener(f"{root}/_dataloader_manifest.json", "rb") as handle:
                manifest = json.loads(handle.read())
        except FileNotFoundError:
            return []
        rows: list[tuple[int, str, int]] = []
        for part in manifest.get("parts") or []:
            with opener(f"{root}/{part['name']}", "rb") as handle:
                table = pq.read_table(handle)
            rows.extend(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), table.column("updated").to_pylist(), strict=True))
        return rows

    def state(self, work: Path, recipe: Path) -> dict[str, Any]:
        name = json.loads(recipe.read_text())["name"]
        return json.loads((work / "state" / f"{name}.json").read_text())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=repr)
def test_sigkill_at_random_points_loses_and_duplicates_nothing(scenario: Scenario, tmp_path: Path, dataloader_bin: str, request: pytest.FixtureRequest) -> None:
    dsn = request.getfixturevalue("pg_dsn") if "postgres" in scenario.name else None
    s3 = request.getfixturevalue("s3_place") if scenario.destination == "s3parquet" else None
    harness = Harness(scenario, tmp_path, dataloader_bin, dsn, s3)
    expected = Counter(source_rows())

    probe = harness.fresh("probe")
    recipe = harness.recipe(probe)
    log = probe / "points.log"
    clean = harness.run(probe, env={"DATALOADER_FAULT_LOG": str(log)})
    assert clean.returncode == 0, clean.stderr
    points = log.read_text().splitlines()
    assert Counter(harness.target_rows(probe)) == expected
    kinds = Counter(line.split()[1] for line in points)
    assert {"batch_read", "batch_written", "before_commit", "after_commit", "state_write"} <= set(kinds)
    if scenario.checkpoint_every:
        assert {"before_checkpoint", "after_checkpoint"} <= set(kinds)

    rng = random.Random(f"{SEED}-{scenario.name}")
    # The moments that matter most are always among the points; the rest are drawn at random.
    must = {next(i for i, p in enumerate(points, 1) if p.endswith(kind)) for kind in ("after_commit", "after_checkpoint", "state_write") if any(p.endswith(kind) for p in points)}
    rest = [i for i in range(1, len(points) + 1) if i not in must]
    chosen = sorted(must | set(rng.sample(rest, max(0, min(POINTS, len(points)) - len(must)))))
    print(f"{scenario.name}: seed {SEED}, {len(points)} crash points {dict(kinds)}, killing at {chosen}")
    for number, at in enumerate(chosen):
        work = harness.fresh(f"kill-{at}")
        recipe = harness.recipe(work)
        killed = harness.run(work, env={"DATALOADER_FAULT_AT": str(at)})
        where = points[at - 1]
        assert killed.returncode == -9, f"point {where}: expected SIGKILL, got {killed.returncode}: {killed.stderr}"
        again = harness.run(work, *(["--resume"] if number % 2 else []))
        assert again.returncode == 0, f"after a kill at {where}: {again.stderr}"
        got = Counter(harness.target_rows(work))
        missing, extra = expected - got, got - expected
        assert not missing and not extra, f"after a kill at {where}: {sum(missing.values())} rows lost, {sum(extra.values())} duplicated"
        state = harness.state(work, recipe)
        assert state["checkpoints"] == {}
        if scenario.source == "postgres":
            assert state["cursor_values"]["updated"] == max(r[2] for r in source_rows()), f"after a kill at {where}"
        # A third run finds nothing new.
        third = harness.run(work)
        assert third.returncode == 0 and Counter(harness.target_rows(work)) == expected
