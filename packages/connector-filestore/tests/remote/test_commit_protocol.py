"""Checkpoints, the dataset lock and source fingerprints on S3 (moto) and SFTP (sshd), through the CLI."""

from __future__ import annotations

import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from dataloader.errors import LeaseHeldError
from dataloader.run.ledger import LeaseHolder
from lock_helpers import dead_pid, destination, elsewhere, lock_payload


def csv_bytes(rows: int) -> tuple[bytes, Counter]:
    table = pa.table({"id": list(range(rows)), "name": [f"row {n}" for n in range(rows)]})
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue(), Counter(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))


def s3_dataset_rows(s3, rel: str) -> tuple[Counter, list[str]]:
    manifest = json.loads(s3.fs.cat_file(s3.key(f"{rel}/_dataloader_manifest.json")))
    names = [part["name"] for part in manifest["parts"]]
    rows: Counter = Counter()
    for name in names:
        table = pq.read_table(io.BytesIO(s3.fs.cat_file(s3.key(f"{rel}/{name}"))))
        rows.update(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))
    return rows, names


def test_checkpointed_run_into_s3_keeps_every_row_exactly_once(cli, s3) -> None:
    data, expected = csv_bytes(45)
    s3.fs.pipe(s3.key("in/data.csv"), data)
    recipe = {
        "name": "cp_s3",
        "source": {"type": "filestore", "path": s3.url("in/data.csv"), "format": "csv", **s3.options},
        "destination": {"type": "filestore", "path": s3.url("out"), "format": "parquet", **s3.options},
        "runtime": {"batch_size": 1, "checkpoint_every": 10},
    }
    result = cli.run(recipe)
    assert result.exit_code == 0, result.output
    rows, names = s3_dataset_rows(s3, "out")
    assert rows == expected
    assert len(names) == len(set(names)) == 5


# -- the dataset lock on S3 and SFTP -----------------------------------------------------------
@pytest.fixture(params=["s3", "sftp"])
def place(request, host):
    """``(destination config, write(rel, bytes), read(rel) -> bytes | None)`` on S3 or SFTP."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")

        def read(rel: str):
            key = s3.key(f"out/{rel}")
            return s3.fs.cat_file(key) if s3.fs.exists(key) else None

        return (
            {"type": "filestore", "path": s3.url("out"), "format": "parquet", **s3.options},
            lambda rel, data: s3.fs.pipe(s3.key(f"out/{rel}"), data),
            read,
        )
    import os
    from pathlib import Path

    sshd = request.getfixturevalue("sshd")
    root = Path(request.getfixturevalue("sftp_dir"))

    def write(rel: str, data: bytes) -> None:
        path = root / "out" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for folder in (root / "out", *path.relative_to(root / "out").parents):
            os.chown(root / "out" / folder, sshd.uid, sshd.gid)
        os.chown(path, sshd.uid, sshd.gid)

    def read(rel: str):
        path = root / "out" / rel
        return path.read_bytes() if path.exists() else None

    return ({"type": "filestore", "path": sshd.url(f"{root}/out"), "format": "parquet", **sshd.options()}, write, read)


LOCK_REL = "_dataloader/locks/locked.json"


def test_remote_lock_second_run_fails_at_once_and_release_frees_it(place) -> None:
    config, _, read = place
    first = destination(config, "run-one")
    first.acquire_lock("locked", LeaseHolder.current("run-one"))
    assert b"run-one" in read(LOCK_REL)
    with pytest.raises(LeaseHeldError, match="run-one"):
        destination(config, "run-two").acquire_lock("locked", LeaseHolder.current("run-two"))
    first.close()
    assert read(LOCK_REL) is None
    second = destination(config, "run-two")
    second.acquire_lock("locked", LeaseHolder.current("run-two"))
    assert b"run-two" in read(LOCK_REL)
    second.close()


def test_remote_stale_locks_are_taken_over_and_fresh_ones_respected(place) -> None:
    config, write, read = place
    write(LOCK_REL, lock_payload(elsewhere(), renewed_ago_s=3))
    with pytest.raises(LeaseHeldError, match="another-host.example"):
        destination(config, "run-two").acquire_lock("locked", LeaseHolder.current("run-two"))
    gone = LeaseHolder(run_id="crashed", host=LeaseHolder.current("x").host, pid=dead_pid(), since="then")
    write(LOCK_REL, lock_payload(gone, renewed_ago_s=1))
    taker = destination(config, "run-three")
    taker.acquire_lock("locked", LeaseHolder.current("run-three"))
    assert b"run-three" in read(LOCK_REL)
    taker.close()
    write(LOCK_REL, lock_payload(elsewhere(), renewed_ago_s=999))
    late = destination(config, "run-four")
    late.acquire_lock("locked", LeaseHolder.current("run-four"))
    assert b"run-four" in read(LOCK_REL)
    late.close()


def test_remote_takeover_is_a_compare_and_swap(place) -> None:
    config, write, read = place
    stale = lock_payload(elsewhere(), renewed_ago_s=999)
    write(LOCK_REL, stale)
    connector = destination(config, "probe")
    from dataloader_filestore.locks import DatasetLock, lock_store

    backend = "s3" if config["path"].startswith("s3://") else "sftp"
    lock = DatasetLock(lock_store(connector.fs, backend), connector.root, config["path"], "locked", ttl_s=120)
    _, version = lock.store.read(lock.path)
    assert lock.store.swap(lock.path, version, b'{"winner": 1}') is not None
    assert lock.store.swap(lock.path, version, b'{"winner": 2}') is None
    assert read(LOCK_REL) == b'{"winner": 1}'


# -- source fingerprints on S3 and SFTP --------------------------------------------------------
def _source(config: dict):
    from dataloader.connector import RunContext
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    connector = FilestoreConnector(FilestoreConfig.model_validate(config))
    connector.context = RunContext(recipe_name="fp", run_id="r", role="source")
    connector.open()
    return connector


def test_s3_fingerprint_changes_when_an_object_is_rewritten_with_the_same_size(host, s3) -> None:
    from dataloader.state import State

    s3.fs.pipe(s3.key("in/a.csv"), b"id\n1\n")
    connector = _source({"type": "filestore", "path": s3.url("in/a.csv"), "format": "csv", **s3.options})
    first = connector.fingerprint(State())
    assert first["entries"][0]["etag"]
    assert connector.fingerprint(State()) == first
    s3.fs.pipe(s3.key("in/a.csv"), b"id\n2\n")  # same size, same second: only the ETag tells
    assert connector.fingerprint(State()) != first


def test_sftp_fingerprint_changes_when_a_file_changes(host, sshd, sftp_dir) -> None:
    import os
    from pathlib import Path

    from dataloader.state import State

    path = Path(sftp_dir) / "a.csv"
    path.write_text("id\n1\n")
    os.chown(path, sshd.uid, sshd.gid)
    connector = _source({"type": "filestore", "path": sshd.url(str(path)), "format": "csv", **sshd.options()})
    first = connector.fingerprint(State())
    assert connector.fingerprint(State()) == first
    stat = path.stat()
    path.write_text("id\n22\n")
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert connector.fingerprint(State()) != first


def test_s3_second_run_through_the_cli_fails_at_once_naming_the_holder(cli, s3) -> None:
    from lock_helpers import LockHolder

    data, expected = csv_bytes(20)
    s3.fs.pipe(s3.key("in/data.csv"), data)
    recipe = {
        "name": "twice_s3",
        "source": {"type": "filestore", "path": s3.url("in/data.csv"), "format": "csv", **s3.options},
        "destination": {"type": "filestore", "path": s3.url("out"), "format": "parquet", **s3.options},
    }
    holder = LockHolder(recipe["destination"], "twice_s3")
    try:
        second = cli.run(recipe)
    finally:
        holder.finish()
    assert second.exit_code == 1, second.output
    assert "already running" in second.output and "the-other-run" in second.output
    assert not s3.fs.exists(s3.key("out/_dataloader_manifest.json"))
    assert cli.run(recipe).exit_code == 0
    assert s3_dataset_rows(s3, "out")[0] == expected
