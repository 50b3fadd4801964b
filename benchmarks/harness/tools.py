"""How each tool runs each workload: the command, its environment and the target it fills.

Workloads (all replace the target's contents on every run):

- W1 Postgres ``bench.events`` → Parquet
- W2 CSV file → Postgres table
- W3 CSV file → DuckDB table
- W4 Postgres ``bench.events`` → DuckDB table

Every tool writes to a target of its own, so runs never see each other's output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.datagen import EVENTS_DDL
from harness.incremental import INCREMENTAL_WORKLOADS, SOURCE, Snapshot, rows_read_from_log
from harness.peers import Peers
from harness.postgres import PgTarget
from harness.verify import DuckDBTarget, ParquetTarget, PostgresTableTarget

SCRIPTS = Path(__file__).parent / "scripts"
WORKLOADS = {
    "W1": "Postgres → Parquet",
    "W2": "CSV → Postgres (replace)",
    "W3": "CSV → DuckDB (replace)",
    "W4": "Postgres → DuckDB (replace)",
    "W5": "Postgres → DuckDB / Postgres (incremental merge)",
    "W6": "W5's recipe, nothing changed (no-op)",
}
#: W5/W6 fill two targets per tool; the label names which (`dataloader → duckdb`).
INCREMENTAL_TARGETS = ("duckdb", "postgres")
TOOLS = ("dataloader", "dlt", "sling", "floor")


@dataclass
class Context:
    rows: int
    csv_path: Path
    pg: PgTarget
    work_dir: Path
    peers: Peers
    dataloader_bin: str | None
    batch_size: int | None = None
    log_dir: Path = Path("logs")
    #: Rows a run moves where that is not ``rows`` (W5: the change set; W6: none), for rows/s.
    moved: dict[str, int] = field(default_factory=dict)


@dataclass
class Job:
    """One tool on one workload: ``setup`` runs once (untimed) before the first run."""

    label: str
    cmd: list[str]
    target: ParquetTarget | PostgresTableTarget | DuckDBTarget
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[], None] | None = None
    #: Each tool runs in a folder of its own (dlt and Sling look for config files in theirs).
    cwd: Path | None = None
    #: W5/W6: the target and state after the initial load, restored (untimed) before each W5 run.
    snapshot: Snapshot | None = None
    #: W5/W6: reads from the run's output how many rows the tool read from the source.
    rows_read: Callable[[str], int | None] | None = None

    def full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _pg_for_sling(pg: PgTarget) -> str:
    return pg.url(query="sslmode=disable")


def _pg_for_dlt(pg: PgTarget) -> str:
    """dlt's Postgres destination insists on a password; a trust-auth server ignores the one given."""
    return pg.url() if pg.password else PgTarget({**pg.params, "password": "unused-by-trust-auth"}).url()


# -- dataloader ---------------------------------------------------------------------------
def find_dataloader(explicit: str | None) -> str | None:
    """``--dataloader-bin``, else the ``dataloader`` script next to this interpreter, else PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "dataloader"
    if beside.exists():
        return str(beside)
    return shutil.which("dataloader")


def dataloader_jobs(workload: str, ctx: Context) -> list[Job]:
    if workload in INCREMENTAL_WORKLOADS:
        return [_dataloader_incremental(workload, ctx, kind) for kind in INCREMENTAL_TARGETS]
    label = "dataloader"
    base = ctx.work_dir / workload / slug(label)
    base.mkdir(parents=True, exist_ok=True)
    pg_section = {"type": "postgres", "dsn": "{{ env_var('BENCH_PG_DSN') }}"}
    csv_source = {"type": "filestore", "path": str(ctx.csv_path), "format": "csv"}
    if workload == "W1":
        target = ParquetTarget(base / "dataset")
        source = {**pg_section, "table": "bench.events"}
        destination = {"type": "filestore", "path": str(target.path), "format": "parquet", "write_mode": "overwrite"}
    elif workload == "W2":
        target = PostgresTableTarget(ctx.pg, f"w2_{slug(label)}")
        source = csv_source
        destination = {**pg_section, "table": f"{target.schema}.events", "write_mode": "overwrite"}
    else:
        target = DuckDBTarget(base / "target.duckdb")
        source = {**pg_section, "table": "bench.events"} if workload == "W4" else csv_source
        destination = {"type": "duckdb", "database": str(target.path), "table": "events", "write_mode": "overwrite"}
    recipe = {"name": f"bench_{workload.lower()}", "source": source, "destination": destination}
    if ctx.batch_size:
        recipe["runtime"] = {"batch_size": ctx.batch_size}
    recipe_path = base / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    cmd = [ctx.dataloader_bin or "dataloader", "run", str(recipe_path), "--state-dir", str(base / "state")]
    return [Job(label, cmd, target, env={"BENCH_PG_DSN": ctx.pg.url()}, cwd=base)]


def _dataloader_incremental(workload: str, ctx: Context, kind: str) -> Job:
    label = f"dataloader → {kind}"
    base = ctx.work_dir / workload / slug(label)
    base.mkdir(parents=True, exist_ok=True)
    pg_section = {"type": "postgres", "dsn": "{{ env_var('BENCH_PG_DSN') }}"}
    source = {**pg_section, "table": SOURCE, "incremental": {"strategy": "cursor", "cursor_column": "updated_at", "primary_key": ["id"]}}
    merge = {"write_mode": "merge", "merge_keys": ["id"]}
    if kind == "duckdb":
        target = DuckDBTarget(base / "target.duckdb")
        destination = {"type": "duckdb", "database": str(target.path), "table": "events", **merge}
    else:
        target = PostgresTableTarget(ctx.pg, f"{workload.lower()}_{slug(label)}")
        destination = {**pg_section, "table": f"{target.schema}.events", **merge}
    recipe = {"name": f"bench_{workload.lower()}_{kind}", "source": source, "destination": destination}
    if ctx.batch_size:
        recipe["runtime"] = {"batch_size": ctx.batch_size}
    recipe_path = base / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    state = base / "state"
    cmd = [ctx.dataloader_bin or "dataloader", "run", str(recipe_path), "--state-dir", str(state)]
    env = {"BENCH_PG_DSN": ctx.pg.url(), "DATALOADER_HISTORY": str(base / "runs.db")}
    # The Postgres destination commits the recipe's state with the rows, in public._dataloader_state.
    record = (ctx.pg, "public._dataloader_state", recipe["name"]) if kind == "postgres" else None
    return Job(label, cmd, target, env=env, cwd=base, snapshot=Snapshot(target, [state], record),
               rows_read=rows_read_from_log(r": \w+, ([\d,]+) rows read"))


# -- dlt ----------------------------------------------------------------------------------
def dlt_jobs(workload: str, ctx: Context) -> list[Job]:
    backends = ["pyarrow", "connectorx"] if workload in ("W1", "W4") else ["duckdb csv"]
    jobs = []
    for backend in backends:
        label = f"dlt ({backend})"
        base = ctx.work_dir / workload / slug(label)
        base.mkdir(parents=True, exist_ok=True)
        dataset = f"{workload.lower()}_{slug(label)}"
        spec = {"backend": backend, "chunk_size": 100_000,
                "csv_dir": str(ctx.csv_path.parent), "csv_name": ctx.csv_path.name,
                "pipeline": f"bench_{dataset}", "dataset": dataset, "pipelines_dir": str(base / "pipelines")}
        if workload == "W1":
            spec["out_url"] = (base / "bucket").as_uri()
            target = ParquetTarget(base / "bucket" / dataset / "events")
        elif workload == "W2":
            target = PostgresTableTarget(ctx.pg, dataset)
        else:
            spec["duckdb_path"] = str(base / "target.duckdb")
            target = DuckDBTarget(base / "target.duckdb", f"{dataset}.events", python=str(ctx.peers.python))
        env = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(base / "dlt-data"),
               "BENCH_PG_URL": _pg_for_dlt(ctx.pg)}
        cmd = [str(ctx.peers.python), str(SCRIPTS / "dlt_run.py"), workload, json.dumps(spec)]
        jobs.append(Job(label, cmd, target, env=env, cwd=base))
    return jobs


# -- Sling --------------------------------------------------------------------------------
def sling_jobs(workload: str, ctx: Context) -> list[Job]:
    """Sling; on W1 twice: its default single-file Parquet target, and a folder of part files."""
    variants = [("sling", None)]
    if workload == "W1":
        variants.append(("sling (parquet parts)", {"format": "parquet", "file_max_rows": 500_000}))
    jobs = []
    for label, tgt_options in variants:
        base = ctx.work_dir / workload / slug(label)
        base.mkdir(parents=True, exist_ok=True)
        env = {"HOME": str(ctx.peers.home), "SLING_HOME_DIR": str(base / "sling-home"),
               "SLING_DISABLE_TELEMETRY": "true", "BENCH_PG": _pg_for_sling(ctx.pg),
               "DUCKDB_PATH": str(ctx.peers.duckdb_cli), "BENCH_DUCK": f"duckdb://{base / 'target.duckdb'}"}
        cmd = [str(ctx.peers.sling), "run", "--mode", "full-refresh"]
        if workload in ("W1", "W4"):
            cmd += ["--src-conn", "BENCH_PG", "--src-stream", "bench.events"]
        else:  # Sling reads an empty CSV field as '' unless told; the file's empty fields are NULLs
            cmd += ["--src-stream", ctx.csv_path.as_uri(), "--src-options", json.dumps({"empty_as_null": True})]
        if workload == "W1":
            target = ParquetTarget(base / ("events" if tgt_options else "events.parquet"))
            cmd += ["--tgt-object", target.path.as_uri()]
            if tgt_options:
                cmd += ["--tgt-options", json.dumps(tgt_options)]
        elif workload == "W2":
            target = PostgresTableTarget(ctx.pg, f"w2_{slug(label)}")
            cmd += ["--tgt-conn", "BENCH_PG", "--tgt-object", f"{target.schema}.events"]
        else:
            target = DuckDBTarget(base / "target.duckdb", python=str(ctx.peers.python))
            cmd += ["--tgt-conn", "BENCH_DUCK", "--tgt-object", "main.events"]
        jobs.append(Job(label, cmd, target, env=env, cwd=base))
    return jobs


# -- the native floor ---------------------------------------------------------------------
def floor_jobs(workload: str, ctx: Context) -> list[Job]:
    if workload in INCREMENTAL_WORKLOADS:
        return [_floor_incremental(workload, ctx, kind) for kind in INCREMENTAL_TARGETS]
    label = "floor"
    base = ctx.work_dir / workload / label
    base.mkdir(parents=True, exist_ok=True)
    without_password = PgTarget({k: v for k, v in ctx.pg.params.items() if k != "password"})
    spec = {"pg_conninfo": without_password.conninfo(), "csv_path": str(ctx.csv_path)}
    env = {"PGPASSWORD": ctx.pg.password} if ctx.pg.password else {}
    setup = None
    if workload == "W1":
        target = ParquetTarget(base / "events.parquet")
        spec["out_path"] = str(target.path)
    elif workload == "W2":
        target = PostgresTableTarget(ctx.pg, f"w2_{label}")
        spec["pg_table"] = target.qualified

        def setup(target=target):
            conn = ctx.pg.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {target.schema}")
                    cur.execute(EVENTS_DDL.replace("bench.events", target.qualified))
                conn.commit()
            finally:
                conn.close()
    else:
        target = DuckDBTarget(base / "target.duckdb")
        spec["duckdb_path"] = str(target.path)
    cmd = [sys.executable, str(SCRIPTS / "floor.py"), workload, json.dumps(spec)]
    return [Job("floor", cmd, target, env=env, setup=setup, cwd=base)]


def _floor_incremental(workload: str, ctx: Context, kind: str) -> Job:
    """The hand-written incremental merge: the changed rows by ``\\copy (SELECT … WHERE updated_at > mark)``."""
    label = f"floor → {kind}"
    base = ctx.work_dir / workload / slug(label)
    base.mkdir(parents=True, exist_ok=True)
    without_password = PgTarget({k: v for k, v in ctx.pg.params.items() if k != "password"})
    state = base / "mark.json"
    spec = {"pg_conninfo": without_password.conninfo(), "source": SOURCE, "state_path": str(state), "kind": kind}
    if kind == "duckdb":
        target = DuckDBTarget(base / "target.duckdb")
        spec["duckdb_path"] = str(target.path)
    else:
        target = PostgresTableTarget(ctx.pg, f"{workload.lower()}_{slug(label)}")
        spec["pg_table"] = target.qualified
        spec["pg_schema"] = target.schema
    env = {"PGPASSWORD": ctx.pg.password} if ctx.pg.password else {}
    cmd = [sys.executable, str(SCRIPTS / "floor.py"), "merge", json.dumps(spec)]
    return Job(label, cmd, target, env=env, cwd=base, snapshot=Snapshot(target, [state]),
               rows_read=rows_read_from_log(r"floor: (\d+) rows read"))


def unavailable_reason(tool: str, ctx: Context) -> str | None:
    if tool == "dataloader":
        return None if ctx.dataloader_bin else "no `dataloader` executable next to this python or on PATH"
    if tool == "floor":
        return None if shutil.which("psql") else "psql is not installed"
    return ctx.peers.unavailable.get(tool)


JOB_BUILDERS = {"dataloader": dataloader_jobs, "dlt": dlt_jobs, "sling": sling_jobs, "floor": floor_jobs}
