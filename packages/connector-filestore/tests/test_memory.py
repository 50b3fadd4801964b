"""A 2-million-row CSV streams through: the loading process stays under 400 MiB at its peak.

The load runs in a child process that reports its own peak RSS, so nothing the test process
allocated (it builds the file) is counted. On Linux the child reads ``VmHWM`` from
/proc/self/status: ``ru_maxrss`` survives ``exec`` and can report the forking parent's size.
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
import pytest
from filestore_helpers import duckdb_plugin

ROWS = 2_000_000
LIMIT_MIB = 400

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from dataloader import run_recipe
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    recipe = Recipe.from_dict(json.loads(sys.argv[1]))
    result = run_recipe(recipe, LocalStateBackend(sys.argv[2]), history=False)
    try:
        with open("/proc/self/status") as status:
            peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": result.rows_written, "peak_mib": peak_kib / 1024}))
    """
)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    ids = pa.array(range(ROWS), pa.int64())
    text = pc.cast(ids, pa.string())
    table = pa.table(
        {
            "id": ids,
            "name": pc.binary_join_element_wise("customer ", text, ", Lisbon", ""),
            "amount": pc.divide(pc.cast(ids, pa.float64()), 7.0),
            "note": pc.if_else(pc.equal(pc.bit_wise_and(ids, 7), 0), "line one\nline two", "plain é"),
        }
    )
    pacsv.write_csv(table, path)
    return path


def load_in_child(tmp_path: Path, source: dict, destination: dict) -> dict:
    recipe = {"name": "big", "source": source, "destination": destination}
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(recipe), str(tmp_path / "state")],
        capture_output=True, text=True, check=False, env={**os.environ, "DATALOADER_HISTORY": "off"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_two_million_row_csv_to_parquet_dataset_stays_under_400_mib(big_csv: Path, tmp_path: Path) -> None:
    source = {"type": "filestore", "path": str(big_csv), "format": "csv"}
    destination = {"type": "filestore", "path": str(tmp_path / "out"), "format": "parquet"}
    report = load_in_child(tmp_path, source, destination)
    print(f"csv -> parquet dataset: {report}")
    assert report["rows"] == ROWS
    assert report["peak_mib"] < LIMIT_MIB



def test_two_million_row_csv_to_duckdb_stays_under_400_mib(big_csv: Path, tmp_path: Path) -> None:
    duckdb_plugin()
    source = {"type": "filestore", "path": str(big_csv), "format": "csv"}
    destination = {"type": "duckdb", "database": str(tmp_path / "big.duckdb"), "table": "big"}
    report = load_in_child(tmp_path, source, destination)
    print(f"csv -> duckdb: {report}")
    assert report["rows"] == ROWS
    assert report["peak_mib"] < LIMIT_MIB
