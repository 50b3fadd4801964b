"""Benchmark dataloader against dlt, Sling and the native floor on four workloads.

    python benchmarks/run.py [--rows N] [--smoke] [--tools dataloader,dlt,sling,floor]
                             [--workloads W1,...,W6] [--runs 3] [--dsn DSN] [--keep]

See benchmarks/README.md. Every run is verified (row count, distinct ids, sum of ids, NULL count of
``note``); a tool whose output is wrong is reported FAILED, not timed. Exit code 1 when a run of
dataloader or of the floor fails (a peer's failure is reported, not fatal); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import datagen, incremental, postgres, report  # noqa: E402
from harness.measure import run_measured  # noqa: E402
from harness.peers import ensure_peers  # noqa: E402
from harness.report import RunRecord, ToolResult  # noqa: E402
from harness.tools import JOB_BUILDERS, TOOLS, WORKLOADS, Context, Job, find_dataloader, unavailable_reason  # noqa: E402
from harness.verify import VerificationError, compare  # noqa: E402

SMOKE_ROWS = 50_000
DOCS_PAGE = HERE.parent / "docs" / "benchmarks.md"
OUR_TOOLS = ("dataloader", "floor")


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="rows in bench.events (default 2,000,000)")
    parser.add_argument("--smoke", action="store_true",
                        help="50k rows, 1 measured run, no warm-up; results only under benchmarks/results/")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of W1..W6")
    parser.add_argument("--runs", type=int, default=None, help="measured runs per tool (default 3; smoke 1)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs per tool (default 1; smoke 0)")
    parser.add_argument("--dsn", default=None, help="admin connection (default $DATALOADER_TEST_POSTGRES_DSN "
                        f"or {postgres.DEFAULT_DSN}; a local server is started when none answers)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database and the work folder")
    parser.add_argument("--database", default=None, help=f"the bench database (default {postgres.BENCH_DB}; "
                        "a smoke run uses one of its own, named after its process id)")
    parser.add_argument("--work-dir", type=Path, default=None, help="where targets are written (default: a temp dir)")
    parser.add_argument("--dataloader-bin", default=None, help="the dataloader executable to benchmark")
    parser.add_argument("--batch-size", type=int, default=None, help="runtime.batch_size for dataloader's recipes")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before one run is killed")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for tool in args.tools:
        if tool not in TOOLS:
            parser.error(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    for workload in args.workloads:
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    if args.rows is None:
        args.rows = SMOKE_ROWS if args.smoke else 2_000_000
    args.runs = args.runs if args.runs is not None else (1 if args.smoke else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.smoke else 1)
    if args.database is None:
        args.database = f"{postgres.BENCH_DB}_smoke_{os.getpid()}" if args.smoke else postgres.BENCH_DB
    args.timeout = args.timeout or (120.0 if args.smoke else max(1800.0, args.rows / 2_000_000 * 900))
    if args.rows < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--rows and --runs must be positive, --warmup not negative")
    return args


def start_postgres(args: argparse.Namespace):
    """The admin target, and the throwaway server started for it (or None)."""
    dsn = args.dsn or os.environ.get("DATALOADER_TEST_POSTGRES_DSN")
    admin = postgres.PgTarget.from_dsn(dsn or postgres.DEFAULT_DSN)
    if postgres.reachable(admin):
        return admin, None
    if dsn:
        raise SystemExit(f"error: no Postgres server answers at {admin.describe()}")
    log(f"no server at {admin.describe()}; starting a throwaway cluster")
    server = postgres.ThrowawayServer()
    return server.start(), server


def settle(ctx: Context) -> None:
    """Untimed, before every run: finish the previous run's writes so they do not land in this one.

    The kernel flushes the files a run wrote (a DuckDB or Parquet target: hundreds of MB) and
    PostgreSQL's checkpointer writes out the pages a COPY dirtied, both in the background and both
    long after the run that caused them has stopped its clock. ``sync`` and ``CHECKPOINT`` do that
    work now, so every tool starts on a quiet machine whoever ran before it.
    """
    os.sync()
    try:
        conn = ctx.pg.connect()
    except Exception:
        return
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
    except Exception as exc:  # without the privilege the run is merely noisier
        log(f"CHECKPOINT failed ({type(exc).__name__}: {exc}); runs may see the previous run's writes")
    finally:
        conn.close()


def run_one(job: Job, expected, log_path: Path, timeout: float, warmup: bool,
            read_expected: incremental.ReadCheck | None = None) -> RunRecord:
    load = os.getloadavg()[0]
    record = _run_one(job, expected, log_path, timeout, warmup, read_expected)
    record.load = load
    return record


def _run_one(job: Job, expected, log_path: Path, timeout: float, warmup: bool,
             read_expected: incremental.ReadCheck | None = None) -> RunRecord:
    m = run_measured(job.cmd, log=log_path, env=job.full_env(), cwd=job.cwd, timeout_s=timeout)
    if m.timed_out:
        return RunRecord(m.wall_s, m.peak_rss, False, f"timed out after {timeout:.0f}s (log {log_path})", warmup)
    if m.returncode != 0:
        tail = m.tail(6).replace("\n", " / ")
        return RunRecord(m.wall_s, m.peak_rss, False, f"exit {m.returncode}: {tail[-600:]} (log {log_path})", warmup)
    rows_read = None
    try:
        compare(expected, job.target.facts())
        if job.rows_read is not None and read_expected is not None:
            rows_read = read_expected.check(log_path.read_text(errors="replace"), job.rows_read)
    except VerificationError as exc:
        return RunRecord(m.wall_s, m.peak_rss, False, f"verification failed: {exc}", warmup)
    except Exception as exc:  # a target the checker cannot read is a failed run, not a harness crash
        return RunRecord(m.wall_s, m.peak_rss, False, f"verification failed: {type(exc).__name__}: {exc}", warmup)
    return RunRecord(m.wall_s, m.peak_rss, True, "", warmup, rows_read=rows_read)


def prepare_incremental(workload: str, ctx: Context, args, active: list) -> tuple[dict, incremental.ReadCheck]:
    """W5/W6, untimed: the source, every tool's initial full load (verified) and, for W5, its snapshot.

    Returns the facts every measured run's target must have and how many rows each run must read.
    """
    incremental.create_source(ctx.pg)
    changed = 0
    if workload == "W6":  # the no-op: everything is loaded before the measured runs, which find nothing
        changed = incremental.apply_changes(ctx.pg, ctx.rows)
    initial = incremental.source_facts(ctx.pg)
    for job, result in active:
        log_path = ctx.log_dir / f"{workload}-{_slug(job.label)}-initial.log"
        settle(ctx)
        record = run_one(job, initial, log_path, args.timeout, True)
        log(f"{workload} {job.label:<18} initial load {record.wall_s:7.2f}s" if record.ok
            else f"{workload} {job.label:<18} initial load failed: {record.error}")
        if not record.ok:
            result.runs.append(record)
        elif workload == "W5":
            job.snapshot.take()
    mark = incremental.current_mark(ctx.pg)  # what every tool's state holds now
    ctx.moved[workload] = incremental.changes_for(ctx.rows) * 2 if workload == "W5" else 0
    if workload == "W5":
        changed = incremental.apply_changes(ctx.pg, ctx.rows)
        log(f"W5: {changed:,} rows of {incremental.SOURCE} changed ({changed // 2:,} updated, {changed // 2:,} new)")
        return incremental.source_facts(ctx.pg), incremental.ReadCheck(changed, incremental.boundary_rows(ctx.pg, mark))
    return initial, incremental.ReadCheck(0, incremental.boundary_rows(ctx.pg, mark))


def run_workload(workload: str, ctx: Context, args, expected: datagen.Expected) -> list[ToolResult]:
    results: list[ToolResult] = []
    active: list[tuple[Job, ToolResult]] = []
    for tool in args.tools:
        reason = unavailable_reason(tool, ctx)
        if not reason and workload in incremental.INCREMENTAL_WORKLOADS and tool in ("dlt", "sling"):
            reason = "W5/W6 are not wired for this peer in the harness yet"
        if reason:
            results.append(ToolResult(workload, tool, tool, unavailable=reason))
            continue
        for job in JOB_BUILDERS[tool](workload, ctx):
            result = ToolResult(workload, tool, job.label)
            results.append(result)
            job.target.reset()
            if job.setup:
                job.setup()
            active.append((job, result))
    read_expected = None
    if workload in incremental.INCREMENTAL_WORKLOADS:
        expected, read_expected = prepare_incremental(workload, ctx, args, active)
    rounds = args.warmup + args.runs
    for index in range(rounds):
        warmup = index < args.warmup
        shift = index % max(1, len(active))
        for job, result in active[shift:] + active[:shift]:  # interleaved, rotating who goes first
            if result.runs and not result.runs[-1].ok:
                continue  # a tool that failed once is reported FAILED; no point timing it again
            log_path = ctx.log_dir / f"{workload}-{_slug(job.label)}-{index}.log"
            if workload == "W5" and job.snapshot is not None:
                job.snapshot.restore()  # untimed: the target and state as they were after the initial load
            settle(ctx)
            record = run_one(job, expected, log_path, args.timeout, warmup, read_expected)
            result.runs.append(record)
            kind = "warm-up" if warmup else f"run {index - args.warmup + 1}/{args.runs}"
            verdict = f"{record.wall_s:7.2f}s {record.peak_rss / report.MIB:7.0f} MiB" if record.ok else record.error
            log(f"{workload} {job.label:<18} {kind:<9} {verdict}")
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())


def write_outputs(args, summary: list[dict], facts: dict[str, str], command: str, started: datetime) -> Path:
    table = report.table_lines(summary, WORKLOADS)
    problems = report.problem_lines(summary)
    print()
    print("\n".join(table))
    if problems:
        print("\n" + "\n".join(problems))
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    kind = "smoke" if args.smoke else "full"
    out = results_dir / f"{kind}-{args.rows}-{stamp}.json"
    out.write_text(json.dumps({"command": command, "started": started.isoformat(), "rows": args.rows,
                               "runs": args.runs, "warmup": args.warmup, "machine": facts,
                               "results": summary}, indent=2, default=str))
    log(f"results written to {out}")
    if not args.smoke and not args.no_docs:
        DOCS_PAGE.write_text(docs_page(args, summary, facts, command, started))
        log(f"docs page written to {DOCS_PAGE}")
    return out


ANALYSIS_HEADING = "## Analysis"


def kept_analysis() -> str:
    """The hand-written part of the docs page (from ``## Analysis`` on) survives regeneration."""
    if not DOCS_PAGE.exists():
        return ""
    text = DOCS_PAGE.read_text()
    at = text.find("\n" + ANALYSIS_HEADING)
    return text[at:] if at >= 0 else ""


def docs_page(args, summary: list[dict], facts: dict[str, str], command: str, started: datetime) -> str:
    machine = "\n".join(f"| {key} | {value} |" for key, value in facts.items())
    problems = report.problem_lines(summary)
    loads = [run["load"] for row in summary for run in row["runs"] if not run["warmup"]]
    load_note = (f"The machine's 1-minute load average at the start of the measured runs was "
                 f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores." if loads else "")
    return f"""# Benchmarks

Generated by `benchmarks/run.py` on {started:%Y-%m-%d %H:%M} UTC; see `benchmarks/README.md` for what
each workload does and how every run is verified. Numbers are medians of {args.runs} measured runs after
{args.warmup} warm-up run(s), tools interleaved, each run after `sync` and a Postgres `CHECKPOINT`,
{args.rows:,} rows of `bench.events`. Peak RSS is the
largest resident memory of the tool's whole process tree during any measured run. "× floor" is the
median divided by the native floor's median on the same workload. {load_note}

Command:

```
{command}
```

## Machine

| | |
|---|---|
{machine}

## Results

{chr(10).join(report.table_lines(summary, WORKLOADS))}

## dataloader against the targets of issue 20

{chr(10).join(report.target_lines(summary))}

## Failed or unavailable

{chr(10).join(problems) if problems else "None: every run of every tool was verified."}
{kept_analysis()}"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    admin, server = start_postgres(args)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="dataloader-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    failed_ours = False
    guard = postgres.BenchLock(admin, args.database)
    guard.acquire()
    try:
        bench = postgres.create_database(admin, args.database)
        log(f"data set: {args.rows:,} rows")
        csv_path, expected = datagen.ensure_csv(HERE / "data", args.rows)
        conn = bench.connect()
        try:
            if datagen.load_postgres(conn, csv_path, args.rows):
                log(f"loaded bench.events into {bench.describe()}")
        finally:
            conn.close()
        peers = ensure_peers(HERE / ".venv-peers", set(args.tools) & {"dlt", "sling"}, log=log)
        ctx = Context(rows=args.rows, csv_path=csv_path, pg=bench, work_dir=work_dir, peers=peers,
                      dataloader_bin=find_dataloader(args.dataloader_bin), batch_size=args.batch_size,
                      log_dir=HERE / "results" / "logs" / f"{'smoke' if args.smoke else 'full'}-{started:%Y%m%dT%H%M%SZ}")
        results: list[ToolResult] = []
        for workload in args.workloads:
            log(f"{workload}: {WORKLOADS[workload]}")
            results += run_workload(workload, ctx, args, expected)
        versions = report.harness_versions(ctx.dataloader_bin)
        versions.update(peers.versions() if set(args.tools) & {"dlt", "sling"} else {})
        facts = report.machine_facts(postgres.server_version(bench), versions)
        facts["load average (1/5/15 min) at start → end"] = (
            f"{'/'.join(f'{x:.1f}' for x in load_before)} → {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
        summary = report.summarise(results, args.rows, ctx.moved)
        write_outputs(args, summary, facts, command, started)
        failed_ours = any(r["status"] != "ok" for r in summary if r["tool"] in OUR_TOOLS)
    finally:
        if not args.keep:
            postgres.drop_database(admin, args.database)
            if args.work_dir is None:
                shutil.rmtree(work_dir, ignore_errors=True)
        else:
            log(f"kept database {args.database} and work folder {work_dir}")
        guard.release()
        if server is not None:
            server.stop()
    log(f"done in {time.perf_counter() - t0:.0f}s")
    return 1 if failed_ours else 0


if __name__ == "__main__":
    sys.exit(main())
