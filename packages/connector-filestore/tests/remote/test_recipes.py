"""Recipes through the real engine with S3 (moto) and SFTP (sshd) paths.

One recipe shape serves every backend: the S3 and SFTP connection keys sit side by side and the
backend follows ``path`` alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from dataloader.errors import DataLoaderError

from .conftest import read_local_dataset

REPO = Path(__file__).resolve().parents[4]
CUSTOMERS_CSV = REPO / "examples" / "data" / "customers.csv"
FORMATS = ["csv", "json", "jsonl", "parquet"]


@pytest.fixture
def remote(request, tmp_path):
    """``where(rel)`` -> (url, put(rel, bytes), keys) for the backend in the test's parameter."""
    kind = request.param
    if kind == "s3":
        s3 = request.getfixturevalue("s3")
        keys = dict(s3.options)

        def url(rel: str) -> str:
            return s3.url(rel)

        def put(rel: str, data: bytes, mtime: float | None = None) -> None:
            s3.fs.pipe(s3.key(rel), data)  # S3 sets LastModified itself

    else:
        sshd = request.getfixturevalue("sshd")
        base = request.getfixturevalue("sftp_dir")
        keys = sshd.options()

        def url(rel: str) -> str:
            return sshd.url(f"{base}/{rel}")

        def put(rel: str, data: bytes, mtime: float | None = None) -> None:
            path = Path(base, rel)  # the server's disk is this machine's
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if mtime is not None:
                os.utime(path, (mtime, mtime))

    return kind, url, put, keys


both = pytest.mark.parametrize("remote", ["s3", "sftp"], indirect=True)


def read_back(run, source: dict, tmp_path: Path, name: str) -> pa.Table:
    """Read a location with the filestore source into a local Parquet dataset and return its rows."""
    out = tmp_path / f"readback-{name}"
    shutil.rmtree(out, ignore_errors=True)
    run(source, {"type": "filestore", "path": str(out), "format": "parquet", "write_mode": "overwrite"}, name=name)
    return read_local_dataset(out)


@both
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_written_to_and_read_from_the_remote_store(run, remote, tmp_path, fmt):
    _, url, _, keys = remote
    original = pcsv.read_csv(CUSTOMERS_CSV)
    result = run(
        {"type": "filestore", "path": str(CUSTOMERS_CSV), "format": "csv"},
        {"type": "filestore", "path": url(f"out-{fmt}"), "format": fmt, **keys},
        name="write",
    )
    assert result.rows_written == original.num_rows
    table = read_back(run, {"type": "filestore", "path": url(f"out-{fmt}"), "format": fmt, **keys}, tmp_path, "read")
    assert table.num_rows == original.num_rows
    assert sorted(table.column("id").to_pylist()) == sorted(original.column("id").to_pylist())
    by_id = dict(zip(table.column("id").to_pylist(), table.column("email").to_pylist(), strict=True))
    assert by_id == dict(zip(original.column("id").to_pylist(), original.column("email").to_pylist(), strict=True))


def test_the_same_recipe_with_only_the_path_changed_works_on_local_s3_and_sftp(run, s3, sshd, sftp_dir, tmp_path):
    data = CUSTOMERS_CSV.read_bytes()
    local_dir = tmp_path / "local-in"
    local_dir.mkdir()
    (local_dir / "customers.csv").write_bytes(data)
    s3.fs.pipe(s3.key("in/customers.csv"), data)
    Path(sftp_dir, "in").mkdir()
    Path(sftp_dir, "in", "customers.csv").write_bytes(data)
    # One recipe: every connection key present, the backend chosen by `path` alone.
    shared = {"type": "filestore", "format": "csv", **s3.options, **sshd.options()}
    tables = {}
    for where, path in {
        "local": f"{local_dir}/*.csv",
        "s3": s3.url("in/*.csv"),
        "sftp": sshd.url(f"{sftp_dir}/in/*.csv"),
    }.items():
        tables[where] = read_back(run, {**shared, "path": path}, tmp_path, f"same-{where}").sort_by("id")
    assert tables["local"].num_rows == 200
    assert tables["s3"].equals(tables["local"])
    assert tables["sftp"].equals(tables["local"])


@both
def test_incremental_modified_time_reads_new_and_rewritten_files_only(run, remote, tmp_path):
    _, url, put, keys = remote
    put("in/a.csv", b"id,v\n1,a\n2,b\n", mtime=1_700_000_000)
    put("in/b.csv", b"id,v\n3,c\n", mtime=1_700_000_000)
    source = {
        "type": "filestore",
        "path": url("in/*.csv"),
        "format": "csv",
        "incremental": {"strategy": "modified_time"},
        **keys,
    }
    dest_dir = tmp_path / "inc"
    dest = {"type": "filestore", "path": str(dest_dir), "format": "parquet", "write_mode": "append"}
    assert run(source, dest, name="inc").rows_written == 3
    assert run(source, dest, name="inc").rows_written == 0
    put("in/c.csv", b"id,v\n4,d\n", mtime=1_700_000_100)
    # Same size, rewritten: S3 sees a new ETag (LastModified may not move within a second);
    # SFTP sees the server's new mtime.
    put("in/b.csv", b"id,v\n3,C\n", mtime=1_700_000_200)
    assert run(source, dest, name="inc").rows_written == 2
    assert run(source, dest, name="inc").rows_written == 0
    rows = read_local_dataset(dest_dir).sort_by("id").to_pylist()
    assert [row for row in rows if row["id"] >= 3] == [{"id": 3, "v": "c"}, {"id": 3, "v": "C"}, {"id": 4, "v": "d"}]


@both
def test_failed_overwrite_leaves_the_previous_dataset_whole(run, remote, tmp_path):
    _, url, put, keys = remote
    put("in/a.csv", b"id,v\n1,old\n2,old\n")
    good = {"type": "filestore", "path": url("in/a.csv"), "format": "csv", **keys}
    dest = {"type": "filestore", "path": url("ds"), "format": "parquet", "write_mode": "overwrite", **keys}
    run(good, dest, name="ow")
    rows = [f"{n},new" for n in range(5000)]
    put("in/many/1.csv", ("id,v\n" + "\n".join(rows) + "\n").encode())
    put("in/many/2.csv", b"id,v\nnot-a-number,x\n")  # does not fit the pinned id type
    bad = {"type": "filestore", "path": url("in/many/*.csv"), "format": "csv", "options": {"column_types": {"id": "int64"}}, **keys}
    with pytest.raises(DataLoaderError):
        result = run(bad, dest, name="ow", batch_size=500)
        if result.status != "success":
            raise DataLoaderError(f"run ended {result.status}")
    table = read_back(run, {"type": "filestore", "path": url("ds"), "format": "parquet", **keys}, tmp_path, "check")
    assert table.sort_by("id").to_pylist() == [{"id": 1, "v": "old"}, {"id": 2, "v": "old"}]
