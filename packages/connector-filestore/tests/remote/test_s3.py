"""S3 against moto's standalone server on 127.0.0.1, through the generic fsspec calls the connector uses."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

import pytest
from dataloader.errors import ConnectorError
from dataloader_filestore.remote import check_remote, file_marker, open_remote


def connect(s3, rel: str = "", **options):
    return open_remote({"path": s3.url(rel), **s3.options, **options})


def test_glob_across_prefixes_and_many_objects(s3):
    for day in range(3):
        for n in range(40):
            s3.fs.pipe(s3.key(f"events/day={day}/part-{n:03d}.csv"), b"x\n1\n")
    s3.fs.pipe(s3.key("events/day=0/readme.txt"), b"-")
    fs, root = connect(s3, "events/*/*.csv")
    found = fs.glob(root)
    assert len(found) == 120
    assert found[0] == s3.key("events/day=0/part-000.csv")
    assert fs.glob(s3.key("events/**/part-039.csv")) == [s3.key(f"events/day={d}/part-039.csv") for d in range(3)]


def test_written_object_reads_back_with_ranged_reads(s3):
    fs, root = connect(s3, "data")
    payload = bytes(range(256)) * 200_000  # 51 MB: several parts and several ranged reads
    with fs.open(f"{root}/blob.bin", "wb") as handle:
        for start in range(0, len(payload), 4_000_000):
            handle.write(payload[start : start + 4_000_000])
    assert fs.info(f"{root}/blob.bin")["size"] == len(payload)
    with fs.open(f"{root}/blob.bin", "rb") as handle:
        handle.seek(30_000_000)
        assert handle.read(1000) == payload[30_000_000:30_001_000]
        handle.seek(0)
        assert handle.read() == payload


@pytest.mark.parametrize("size", [1_000, 40 * 2**20], ids=["one-shot", "multipart"])
def test_failed_write_publishes_nothing(s3, size):
    fs, root = connect(s3, "data")
    with pytest.raises(RuntimeError), fs.open(f"{root}/out.csv", "wb") as handle:
        handle.write(b"x" * size)
        raise RuntimeError("the run failed half way")
    assert not fs.exists(f"{root}/out.csv")
    assert s3.fs.call_s3("list_multipart_uploads", Bucket=s3.bucket).get("Uploads", []) == []


def test_abandoned_write_is_not_published_when_collected(s3):
    fs, root = connect(s3, "data")
    handle = fs.open(f"{root}/out.csv", "wb")
    handle.write(b"x" * (20 * 2**20))
    del handle
    gc.collect()
    assert not fs.exists(f"{root}/out.csv")


def test_discard_aborts_the_upload_and_closes_the_file(s3):
    fs, root = connect(s3, "data")
    handle = fs.open(f"{root}/out.csv", "wb")
    handle.write(b"x" * (20 * 2**20))
    handle.discard()
    handle.close()  # harmless after discard
    assert handle.closed and not fs.exists(f"{root}/out.csv")
    assert s3.fs.call_s3("list_multipart_uploads", Bucket=s3.bucket).get("Uploads", []) == []


def test_overwrite_keeps_the_old_object_whole_until_the_new_one_completes(s3):
    fs, root = connect(s3, "data")
    s3.fs.pipe(s3.key("data/out.csv"), b"old\n")
    handle = fs.open(f"{root}/out.csv", "wb")
    handle.write(b"new\n" * (9 * 2**20))  # 36 MB: parts are already uploaded
    assert s3.fs.cat(s3.key("data/out.csv")) == b"old\n"
    handle.close()
    assert s3.fs.cat(s3.key("data/out.csv")) == b"new\n" * (9 * 2**20)


def test_marker_uses_last_modified_and_catches_a_same_size_rewrite_by_etag(s3):
    fs, root = connect(s3, "data")
    s3.fs.pipe(s3.key("data/a.csv"), b"x\n1\n")
    first = file_marker(fs, fs.info(f"{root}/a.csv"))
    assert first["size"] == 4 and first["etag"] and isinstance(first["mtime"], float)
    s3.fs.pipe(s3.key("data/a.csv"), b"x\n2\n")  # same size, very likely the same second
    listed = fs.glob(f"{root}/*.csv", detail=True)[f"{root}/a.csv"]
    second = file_marker(fs, listed)
    assert second != first and second["etag"] != first["etag"]
    json.dumps(second)  # stored in the state as it is


def test_standard_credential_chain_applies_without_keys(s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    fs, root = open_remote({"path": s3.url("x"), "endpoint_url": s3.endpoint_url, "region": "us-east-1"})
    fs.pipe(f"{root}/a", b"1")
    assert s3.fs.cat(s3.key("x/a")) == b"1"


def test_key_without_secret_is_refused(s3):
    with pytest.raises(ConnectorError, match="`key` and `secret` go together"):
        open_remote({"path": s3.url("x"), "endpoint_url": s3.endpoint_url, "key": "only-the-key"})


def test_missing_bucket_is_named_and_no_secret_is_shown(s3):
    config = {"path": "s3://no-such-bucket-here/x/*.csv", **s3.options}
    fs, _ = open_remote(config)
    with pytest.raises(ConnectorError, match="'no-such-bucket-here' does not exist") as caught:
        check_remote(fs, config)
    assert s3.options["secret"] not in str(caught.value) + repr(caught.value.context)


def test_unreachable_endpoint_error_shows_no_secret():
    with socket_closed_port() as port:
        config = {
            "path": "s3://bucket/x",
            "key": "k",
            "secret": "very-secret-value",
            "endpoint_url": f"http://127.0.0.1:{port}",
        }
        fs, _ = open_remote(config)
        fs.retries = 1
        with pytest.raises(ConnectorError) as caught:
            check_remote(fs, config)
    assert "very-secret-value" not in str(caught.value)


def test_credentials_in_the_path_are_refused_without_echoing_them():
    with pytest.raises(ConnectorError) as caught:
        open_remote({"path": "s3://AKIAXX:hunter2@bucket/x"})
    assert "hunter2" not in str(caught.value) + repr(caught.value.context)


def socket_closed_port():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield port

    return closed()


STREAM_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, resource, sys
    from dataloader_filestore.remote import open_remote

    config, total = json.loads(sys.argv[1]), int(sys.argv[2])
    fs, root = open_remote(config)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    sent = hashlib.sha256()
    with fs.open(root + "/big.bin", "wb") as handle:
        for n in range(total // len(chunk)):
            piece = n.to_bytes(8, "big") + chunk[8:]
            sent.update(piece)
            handle.write(piece)
    got = hashlib.sha256()
    size = 0
    with fs.open(root + "/big.bin", "rb") as handle:
        while block := handle.read(1 << 20):
            got.update(block)
            size += len(block)
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's (moto holds the object).
    peak_kib = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print(json.dumps({"size": size, "same": sent.digest() == got.digest(), "peak_kib": peak_kib}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_300_mb_object_streams_up_and_down_with_flat_memory(s3):
    total = 300 * 2**20
    config = {"path": s3.url("big"), **s3.options}
    done = subprocess.run(
        [sys.executable, "-c", STREAM_SCRIPT, json.dumps(config), str(total)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["size"] == total and result["same"]
    peak_mib = result["peak_kib"] / 1024
    print(f"peak RSS streaming 300 MiB to and from S3: {peak_mib:.0f} MiB")
    assert peak_mib < 250


RECIPE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import dataloader_filestore.plugin
    from dataloader import run_recipe
    from dataloader.plugins import PluginHost, use_host
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    recipe, state_dir = json.loads(sys.argv[1]), sys.argv[2]
    host = PluginHost(load_entrypoints=False)
    host.register(dataloader_filestore.plugin, name="filestore", distribution="dataloader-connector-filestore")
    with use_host(host):
        result = run_recipe(Recipe.from_dict(recipe), LocalStateBackend(state_dir), history=False)
    peak_kib = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print(json.dumps({"status": str(result.status), "rows": result.rows_written, "peak_kib": peak_kib}))
    """
)


def _load_csv_from_s3(s3, tmp_path, name: str, mib: int) -> tuple[int, float]:
    """Upload a CSV of about ``mib`` MiB, load it S3 -> S3 Parquet in a child process: (rows, peak MiB)."""
    line = b"%08d,customer name here,some.address@example.com,1234.56,2026-11-25T10:15:00\n"
    block = b"".join(line % n for n in range(50_000))  # about 4 MiB of rows
    repeats = (mib * 2**20) // len(block) + 1
    with s3.fs.open(s3.key(f"{name}/in.csv"), "wb") as handle:
        handle.write(b"id,name,email,amount,ts\n")
        for _ in range(repeats):
            handle.write(block)
    recipe = {
        "name": name,
        "source": {"type": "filestore", "path": s3.url(f"{name}/in.csv"), "format": "csv", **s3.options},
        "destination": {"type": "filestore", "path": s3.url(f"{name}/out"), "format": "parquet", **s3.options},
    }
    done = subprocess.run(
        [sys.executable, "-c", RECIPE_SCRIPT, json.dumps(recipe), str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == repeats * 50_000
    return result["rows"], result["peak_kib"] / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_300_mb_csv_on_s3_loads_into_an_s3_parquet_dataset_with_flat_memory(s3, tmp_path):
    _, small_peak = _load_csv_from_s3(s3, tmp_path, "small", 30)
    rows, big_peak = _load_csv_from_s3(s3, tmp_path, "big", 300)
    print(
        f"peak RSS of a recipe S3 CSV -> S3 Parquet: 30 MiB {small_peak:.0f} MiB, 300 MiB ({rows} rows) {big_peak:.0f} MiB"
    )
    # Flat: ten times the data costs no more than a few blocks more memory.
    assert big_peak < small_peak + 64
