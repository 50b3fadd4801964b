"""Profile dataloader on the benchmark workloads: where does the time go?

    python benchmarks/profile.py [--rows N] [--workloads W1,W4] [--profiler pyinstrument|py-spy] [--keep]

Uses the same data set, database and recipes as ``run.py``. ``pyinstrument`` (the default) samples
the main thread, which is the engine's writer side: time it spends in ``queue.get`` is time it waited
for the reader thread. ``py-spy`` samples every thread (``--threads``); the harness folds its raw
stacks into the functions that take the most samples per thread. Reports go to
``benchmarks/results/profiles/``. Needs ``pip install pyinstrument`` or ``pip install py-spy``.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import datagen, incremental, postgres  # noqa: E402
from harness.peers import Peers  # noqa: E402
from harness.tools import WORKLOADS, Context, dataloader_jobs, find_dataloader  # noqa: E402
from run import start_postgres  # noqa: E402

OUT = HERE / "results" / "profiles"


def fold_py_spy(raw: Path, top: int = 15) -> str:
    """Per thread: its samples, the frames holding them (leaf = where the time is spent, innermost
    first), and the functions of dataloader's own packages that include the most samples."""
    leaf: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    ours: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        thread = thread.split(": ", 1)[-1] if ": " in thread else "main (starting up)"
        n = int(count)
        totals[thread] += n
        if frames:
            leaf[thread][frames[-1]] += n
        for frame in set(frames):
            if "dataloader" in frame and "/cli.py" not in frame and "engine.py:388" not in frame:
                ours[thread][frame] += n
    lines = []
    for thread, total in totals.most_common():
        lines.append(f"\n## {thread}: {total} samples")
        lines.append("leaf frames:")
        lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in leaf[thread].most_common(top)]
        lines.append("dataloader frames (inclusive):")
        lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in ours[thread].most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--profiler", choices=("pyinstrument", "py-spy"), default="pyinstrument")
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--dataloader-bin", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args(argv)
    dataloader_bin = find_dataloader(args.dataloader_bin)
    if not dataloader_bin:
        raise SystemExit("error: no dataloader executable; pass --dataloader-bin")
    admin, server = start_postgres(args)
    work_dir = Path(tempfile.mkdtemp(prefix="dataloader-profile-"))
    OUT.mkdir(parents=True, exist_ok=True)
    guard = postgres.BenchLock(admin, postgres.BENCH_DB)
    guard.acquire()
    try:
        bench = postgres.create_database(admin)
        csv_path, _ = datagen.ensure_csv(HERE / "data", args.rows)
        conn = bench.connect()
        try:
            datagen.load_postgres(conn, csv_path, args.rows)
        finally:
            conn.close()
        ctx = Context(rows=args.rows, csv_path=csv_path, pg=bench, work_dir=work_dir, peers=Peers(HERE / ".venv-peers"),
                      dataloader_bin=dataloader_bin, batch_size=args.batch_size)
        for workload in [w.strip().upper() for w in args.workloads.split(",") if w.strip()]:
            jobs = dataloader_jobs(workload, ctx)
            if workload in incremental.INCREMENTAL_WORKLOADS:
                prepare_incremental(workload, ctx, jobs)
            for job in jobs:
                profile_one(workload, job, args)
    finally:
        if not args.keep:
            postgres.drop_database(admin)
        shutil.rmtree(work_dir, ignore_errors=True)
        guard.release()
        if server is not None:
            server.stop()
    return 0


def prepare_incremental(workload: str, ctx: Context, jobs) -> None:
    """As ``run.py`` does, untimed: the source, each recipe's initial full load, then (W5) the change set."""
    incremental.create_source(ctx.pg)
    if workload == "W6":
        incremental.apply_changes(ctx.pg, ctx.rows)
    for job in jobs:
        job.target.reset()
        subprocess.run(job.cmd, env=job.full_env(), cwd=job.cwd, check=True, stdout=subprocess.DEVNULL)
    if workload == "W5":
        incremental.apply_changes(ctx.pg, ctx.rows)


def profile_one(workload: str, job, args) -> None:
    name = workload + ("-" + job.label.split(" → ", 1)[1] if " → " in job.label else "")
    if args.profiler == "pyinstrument":
        out = OUT / f"{name}-pyinstrument.txt"
        cmd = [sys.executable, "-m", "pyinstrument", "--show-all", "-r", "text", "-o", str(out), *job.cmd]
    else:
        out = OUT / f"{name}-py-spy.raw"
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [py_spy, "record", "--threads", "-r", "250", "-f", "raw", "-o", str(out), "--", *job.cmd]
    print(f"{name}: {' '.join(cmd[:6])} ...", flush=True)
    subprocess.run(cmd, env=job.full_env(), cwd=job.cwd, check=True, stdout=subprocess.DEVNULL)
    if args.profiler == "py-spy":
        summary = out.with_suffix(".txt")
        summary.write_text(fold_py_spy(out))
        out = summary
    print(f"{name}: profile in {out}")


if __name__ == "__main__":
    sys.exit(main())
