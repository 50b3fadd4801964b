"""The dask driver streams finished partitions: its peak RSS does not grow with the row count.

The driver runs in a child process that reports its own peak (``VmHWM``), so what the test process
allocated to build the files is not counted; the workers are the session's LocalCluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

CHILD = textwrap.dedent(
    """
    import json, sys
    from dataloader import run_recipe
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    result = run_recipe(Recipe.from_dict(json.loads(sys.argv[1])), LocalStateBackend(sys.argv[2]), history=False)
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"rows": result.rows_written, "peak_mib": peak_kib / 1024}))
    """
)


def write_files(folder: Path, files: int, rows: int) -> None:
    folder.mkdir(parents=True)
    for number in range(files):
        ids = pa.array(range(number * rows, (number + 1) * rows), pa.int64())
        text = pc.cast(ids, pa.string())
        pacsv.write_csv(pa.table({
            "id": ids,
            "name": pc.binary_join_element_wise("customer ", text, ", somewhere far away", ""),
            "amount": pc.divide(pc.cast(ids, pa.float64()), 7.0),
        }), folder / f"part-{number:02d}.csv")


def driver_peak(cluster, tmp: Path, rows_per_file: int) -> dict:
    write_files(tmp / "in", files=4, rows=rows_per_file)
    recipe = {
        "name": "memory",
        "source": {"type": "filestore", "path": str(tmp / "in" / "*.csv"), "format": "csv"},
        "destination": {"type": "filestore", "path": str(tmp / "out"), "format": "parquet"},
        "runtime": {"executor": "dask", "scheduler": cluster.scheduler_address, "staging": str(tmp / "staging")},
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(recipe), str(tmp / "state")],
        capture_output=True, text=True, check=False, env={**os.environ, "DATALOADER_HISTORY": "off"}, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == 4 * rows_per_file
    assert ds.dataset(tmp / "out", format="parquet").count_rows() == 4 * rows_per_file
    return report


def test_the_drivers_peak_memory_stays_flat_from_n_to_four_times_n_rows(cluster, tmp_path):
    small = driver_peak(cluster, tmp_path / "small", rows_per_file=50_000)
    large = driver_peak(cluster, tmp_path / "large", rows_per_file=200_000)
    # 800k rows are about 45 MiB of Arrow data, 600k rows more than the small run:
    # a driver that held the run would grow by more than the margin (measured: 172 -> 190 MiB).
    assert large["peak_mib"] - small["peak_mib"] < 30, (small, large)
    assert large["peak_mib"] < 400, large
