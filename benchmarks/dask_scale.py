"""Postgres -> Parquet dataset with the local executor and with the dask executor (issue 21).

    python benchmarks/dask_scale.py --rows 10000000 --workers 2

Creates a table of ``--rows`` rows in a database of its own (dropped at the end), then runs the
same recipe three times through the command line: ``runtime.executor: local`` (one COPY read),
the local executor with ``runtime.parallelism: --workers`` (that many key ranges read at once, in
threads, one snapshot) and ``runtime.executor: dask`` with a LocalCluster of ``--workers``
processes (one task per key range, one snapshot). Each run is measured from outside: wall time, and the peak resident memory of every
process of its tree (the driver, and for dask the scheduler-side nannies and the workers), polled.
Both outputs are checked: the same number of rows and the same sum of ids. Prints and saves a
JSON report under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent


def create_table(admin: dict[str, Any], rows: int) -> dict[str, Any]:
    import psycopg2

    name = f"dask_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(**admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    params = {**admin, "dbname": name}
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text, amount numeric(12,2), at timestamptz, note text)"
        )
        cur.execute(
            "INSERT INTO events SELECT g, 'kind-' || (g %% 17), (g %% 100000) * 0.01, "
            "timestamp '2026-01-01' + g * interval '1 second', md5(g::text) FROM generate_series(1, %s) g",
            (rows,),
        )
        cur.execute("ANALYZE events")
    conn.close()
    return params


def drop_database(admin: dict[str, Any], name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(**admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def measured(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall time and the peak RSS of each process of its tree (polled every 50 ms)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    peaks: dict[int, tuple[str, int]] = {}
    total_peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal total_peak
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for p in tree:
                try:
                    rss = p.memory_info().rss
                    label = " ".join(p.cmdline()[:6])
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                if rss > peaks.get(p.pid, ("", 0))[1]:
                    peaks[p.pid] = (label, rss)
            total_peak = max(total_peak, total)
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    output, _ = proc.communicate()
    done.set()
    poller.join()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output}")
    driver = peaks.get(proc.pid, ("", 0))[1]
    others = sorted((rss for pid, (_, rss) in peaks.items() if pid != proc.pid), reverse=True)
    return {
        "wall_s": round(wall, 2),
        "driver_peak_rss_mb": round(driver / 2**20, 1),
        "other_process_peaks_mb": [round(r / 2**20, 1) for r in others],
        "tree_peak_rss_mb": round(total_peak / 2**20, 1),
        "tail": output.strip().splitlines()[-1] if output.strip() else "",
    }


def check_output(folder: Path) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect()
    try:
        count, total = con.execute(f"SELECT count(*), sum(id) FROM read_parquet('{folder}/**/*.parquet')").fetchone()
    finally:
        con.close()
    return int(count), int(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    admin = {"host": args.host, "port": args.port, "user": args.user, "dbname": "postgres"}
    work = Path(tempfile.mkdtemp(prefix="dask-bench-"))
    print(f"creating {args.rows:,} rows ...", flush=True)
    params = create_table(admin, args.rows)
    cli = str(Path(sys.executable).parent / "dataloader")
    report: dict[str, Any] = {
        "benchmark": "postgres -> parquet dataset, local vs dask",
        "rows": args.rows,
        "workers": args.workers,
        "partitions": args.partitions,
        "cpus": os.cpu_count(),
        "at": dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
    }
    try:
        source = {
            "type": "postgres", "host": args.host, "port": args.port, "user": args.user,
            "database": params["dbname"], "table": "events",
            "partition": {"column": "id", "partitions": args.partitions},
        }
        runtimes = {
            "local": {"batch_size": args.batch_size},
            # The same partitions read by the local executor, --workers of them at once (threads).
            "local_parallel": {"batch_size": args.batch_size, "parallelism": args.workers},
            "dask": {"batch_size": args.batch_size, "executor": "dask", "scheduler": "local", "workers": args.workers,
                     "staging": str(work / "staging")},
        }
        for name, runtime in runtimes.items():
            out = work / f"out-{name}"
            recipe = {
                "name": f"bench_{name}",
                "source": source,
                "destination": {"type": "filestore", "path": str(out), "format": "parquet"},
                "runtime": runtime,
            }
            path = work / f"{name}.yaml"
            path.write_text(json.dumps(recipe))
            print(f"running {name} ...", flush=True)
            result = measured([cli, "run", str(path), "--state-dir", str(work / f"state-{name}")], work)
            result["rows"], result["sum_id"] = check_output(out)
            report[name] = result
            print(json.dumps({name: result}, indent=2), flush=True)
        for name in runtimes:
            assert report[name]["rows"] == args.rows, f"{name}: row count differs"
            assert report[name]["sum_id"] == report["local"]["sum_id"], f"{name}: the output differs"
        report["dask_over_local_wall"] = round(report["dask"]["wall_s"] / report["local"]["wall_s"], 3)
        report["local_parallel_over_local_wall"] = round(report["local_parallel"]["wall_s"] / report["local"]["wall_s"], 3)
    finally:
        drop_database(admin, params["dbname"])
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"dask-{args.rows}-{report['at']}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in runtimes}, indent=2))
    print(f"saved {target}")


if __name__ == "__main__":
    main()
