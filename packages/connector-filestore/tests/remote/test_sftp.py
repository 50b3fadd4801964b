"""SFTP against a real OpenSSH sshd on 127.0.0.1, through the generic fsspec calls the connector uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dataloader.errors import ConnectorError, TransientConnectorError
from dataloader_filestore.remote import file_marker, open_remote


def connect(sshd, path: str, **options):
    merged = {**sshd.options(), **options}
    merged = {key: value for key, value in merged.items() if value is not None}
    return open_remote({"path": sshd.url(path), **merged})


# -- authentication ------------------------------------------------------------------------------
def test_password_login_lists_the_directory(sshd, sftp_dir):
    if sshd.password is None:
        pytest.skip("password login needs the root-run sshd and the dlsftp account (.ci/services.sh)")
    Path(sftp_dir, "a.csv").write_text("x\n1\n")
    fs, root = connect(sshd, sftp_dir, private_key=None, password=sshd.password)
    assert fs.ls(root) == [f"{sftp_dir}/a.csv"]


def test_key_login_lists_the_directory(sshd, sftp_dir):
    Path(sftp_dir, "a.csv").write_text("x\n1\n")
    fs, root = connect(sshd, sftp_dir)
    assert fs.ls(root) == [f"{sftp_dir}/a.csv"]


def test_encrypted_key_opens_with_its_passphrase(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir, private_key=sshd.encrypted_key_path, private_key_passphrase=sshd.passphrase)
    assert fs.exists(root)


def test_encrypted_key_without_passphrase_says_so(sshd, sftp_dir):
    with pytest.raises(ConnectorError, match="private_key_passphrase") as caught:
        connect(sshd, sftp_dir, private_key=sshd.encrypted_key_path)
    assert not isinstance(caught.value, TransientConnectorError)


def test_inline_private_key_text_is_accepted(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir, private_key=Path(sshd.key_path).read_text())
    assert fs.exists(root)


def test_wrong_password_fails_at_once_without_retrying(sshd, sftp_dir, cutting_proxy):
    if sshd.password is None:
        pytest.skip("password login needs the root-run sshd and the dlsftp account (.ci/services.sh)")
    proxy = cutting_proxy(cut_after=[])  # counts connections, never cuts
    with pytest.raises(ConnectorError) as caught:
        open_remote(
            {
                "path": sshd.url(sftp_dir, port=proxy.port),
                "username": sshd.user,
                "password": "not-the-password-123",
                "host_key_fingerprint": sshd.fingerprint,
            }
        )
    assert not isinstance(caught.value, TransientConnectorError)
    assert "authentication failed" in str(caught.value)
    assert "not-the-password-123" not in str(caught.value)
    assert proxy.connections == 1


def test_refused_connection_is_retried_then_reported_as_transient(sshd):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(TransientConnectorError, match=f"cannot connect to SFTP server 127.0.0.1:{closed_port}"):
        open_remote({"path": f"sftp://127.0.0.1:{closed_port}/data", **sshd.options(port=None), "retries": 1})


def test_fingerprint_must_be_in_sha256_form():
    from dataloader_filestore.remote import RemoteOptions
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="SHA256:"):
        RemoteOptions(host_key_fingerprint="aa:bb:cc")


# -- host keys -----------------------------------------------------------------------------------
def test_unknown_host_key_is_refused_with_how_to_trust_it(sshd, sftp_dir, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(ConnectorError) as caught:
        connect(sshd, sftp_dir, known_hosts=str(empty))
    message = str(caught.value)
    assert sshd.fingerprint in message
    assert "host_key_policy: accept_new" in message
    assert f"host_key_fingerprint: {sshd.fingerprint}" in message
    assert empty.read_text() == ""  # nothing was silently trusted


def test_accept_new_remembers_the_key_and_later_connections_check_it(sshd, sftp_dir, tmp_path):
    known = tmp_path / "ssh" / "known_hosts"
    fs, root = connect(sshd, sftp_dir, known_hosts=str(known), host_key_policy="accept_new")
    assert fs.exists(root)
    assert known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    fs, root = connect(sshd, sftp_dir, known_hosts=str(known))  # default policy: reject unknown
    assert fs.exists(root)


def test_changed_host_key_is_refused_even_with_accept_new(sshd, sftp_dir, tmp_path):
    other = tmp_path / "other_key"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    known = tmp_path / "known_hosts"
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    with pytest.raises(ConnectorError, match="does not match"):
        connect(sshd, sftp_dir, known_hosts=str(known), host_key_policy="accept_new")


def test_pinned_fingerprint_connects_without_known_hosts(sshd, sftp_dir, tmp_path):
    fs, root = connect(sshd, sftp_dir, known_hosts=str(tmp_path / "none"), host_key_fingerprint=sshd.fingerprint)
    assert fs.exists(root)


def test_wrong_pinned_fingerprint_is_refused(sshd, sftp_dir):
    with pytest.raises(ConnectorError, match="not the pinned"):
        connect(sshd, sftp_dir, host_key_fingerprint="SHA256:" + "A" * 43)


# -- file operations -----------------------------------------------------------------------------
def test_glob_info_mv_rm_makedirs(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir)
    fs.makedirs(f"{root}/in/2024", exist_ok=True)
    for name in ("in/a.csv", "in/b.csv", "in/2024/c.csv", "in/skip.json"):
        with fs.open(f"{root}/{name}", "wb") as handle:
            handle.write(b"x\n1\n")
    assert fs.glob(f"{root}/in/*.csv") == [f"{root}/in/a.csv", f"{root}/in/b.csv"]
    assert fs.glob(f"{root}/in/**/*.csv") == [f"{root}/in/2024/c.csv", f"{root}/in/a.csv", f"{root}/in/b.csv"]
    assert fs.info(f"{root}/in/a.csv")["size"] == 4
    fs.mv(f"{root}/in/a.csv", f"{root}/in/moved.csv")
    assert not fs.exists(f"{root}/in/a.csv") and fs.exists(f"{root}/in/moved.csv")
    fs.rm(f"{root}/in", recursive=True)
    assert fs.ls(root) == []


def test_relative_path_is_under_the_login_directory(sshd, sftp_dir):
    fs, root = open_remote({"path": "some/dir/*.csv", "backend": "sftp", **sshd.options()})
    home = fs.ftp.normalize(".")
    assert root == f"{home}/some/dir/*.csv"


def test_write_is_invisible_until_closed_then_renamed_into_place(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir)
    target = f"{root}/out.csv"
    Path(target).write_bytes(b"old\n")
    handle = fs.open(target, "wb")
    handle.write(b"new\n" * 300_000)  # more than one block goes out before close
    handle.flush()
    assert Path(target).read_bytes() == b"old\n"
    assert [name for name in os.listdir(root) if name.startswith(".out.csv.")]  # the hidden temp name
    handle.close()
    assert Path(target).read_bytes() == b"new\n" * 300_000
    assert os.listdir(root) == ["out.csv"]


def test_failed_write_leaves_the_old_file_and_no_temporary(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir)
    target = f"{root}/out.csv"
    Path(target).write_bytes(b"old\n")
    with pytest.raises(RuntimeError), fs.open(target, "wb") as handle:
        handle.write(b"half" * 2_000_000)
        raise RuntimeError("the run failed")
    assert Path(target).read_bytes() == b"old\n"
    assert os.listdir(root) == ["out.csv"]


def test_discard_removes_the_temporary_and_keeps_the_old_file(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir)
    Path(root, "out.csv").write_bytes(b"old\n")
    handle = fs.open(f"{root}/out.csv", "wb")
    handle.write(b"new\n" * 2_000_000)
    handle.discard()
    handle.close()  # harmless after discard
    assert Path(root, "out.csv").read_bytes() == b"old\n"
    assert os.listdir(root) == ["out.csv"]


def test_small_reads_seeks_and_lines_return_the_right_bytes(sshd, sftp_dir):
    payload = b"".join(b"line %07d\n" % n for n in range(400_000))  # about 5 MB, several read-ahead blocks
    Path(sftp_dir, "lines.txt").write_bytes(payload)
    fs, root = connect(sshd, sftp_dir)
    with fs.open(f"{root}/lines.txt", "rb") as handle:
        pieces = []
        while piece := handle.read(1000):
            pieces.append(piece)
        assert b"".join(pieces) == payload
        handle.seek(-13, os.SEEK_END)
        assert handle.read() == payload[-13:]
        handle.seek(2_500_000)
        assert handle.readline() == payload[2_500_000 : payload.index(b"\n", 2_500_000) + 1]
    with fs.open(f"{root}/lines.txt", "rb") as handle:
        assert sum(1 for _ in handle) == 400_000


def test_marker_follows_the_server_mtime_and_size(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir)
    path = Path(root, "a.csv")
    path.write_text("x\n1\n")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    first = file_marker(fs, fs.info(str(path)))
    assert first == {"mtime": 1_700_000_000.0, "size": 4, "etag": None}
    path.write_text("x\n1\n2\n")
    os.utime(path, (1_700_000_100, 1_700_000_100))
    assert file_marker(fs, fs.glob(str(path), detail=True)[str(path)]) == {
        "mtime": 1_700_000_100.0,
        "size": 6,
        "etag": None,
    }


def test_missing_file_is_file_not_found_not_a_retry(sshd, sftp_dir):
    fs, root = connect(sshd, sftp_dir)
    with pytest.raises(FileNotFoundError):
        fs.info(f"{root}/nope.csv")
    assert not fs.exists(f"{root}/nope.csv")
    assert fs.reconnects == 0


# -- dropped connections -------------------------------------------------------------------------
def test_read_cut_mid_transfer_resumes_to_the_exact_bytes(sshd, sftp_dir, cutting_proxy):
    payload = os.urandom(6 * 2**20)
    Path(sftp_dir, "big.bin").write_bytes(payload)
    proxy = cutting_proxy(cut_after=3 * 2**20, direction="down")
    fs, root = open_remote(
        {
            "path": sshd.url(sftp_dir, port=proxy.port),
            **sshd.options(port=proxy.port, host_key_fingerprint=sshd.fingerprint),
        }
    )
    with fs.open(f"{root}/big.bin", "rb") as handle:
        received = handle.read()
    assert received == payload
    assert proxy.cut_count == 1 and proxy.connections == 2
    assert fs.reconnects == 1


def test_write_cut_mid_transfer_resumes_and_publishes_the_whole_file(sshd, sftp_dir, cutting_proxy):
    payload = os.urandom(10 * 2**20 + 123)
    proxy = cutting_proxy(cut_after=6 * 2**20, direction="up")
    fs, root = open_remote(
        {
            "path": sshd.url(sftp_dir, port=proxy.port),
            **sshd.options(port=proxy.port, host_key_fingerprint=sshd.fingerprint),
        }
    )
    with fs.open(f"{root}/big.bin", "wb") as handle:
        for start in range(0, len(payload), 1_000_000):
            handle.write(payload[start : start + 1_000_000])
    assert Path(sftp_dir, "big.bin").read_bytes() == payload
    assert proxy.cut_count == 1
    assert os.listdir(sftp_dir) == ["big.bin"]


def test_connection_that_keeps_dropping_gives_a_transient_error(sshd, sftp_dir, cutting_proxy):
    Path(sftp_dir, "big.bin").write_bytes(os.urandom(4 * 2**20))
    # The first connection breaks mid-read; every later one breaks during the handshake.
    proxy = cutting_proxy(cut_after=[2 * 2**20] + [500] * 50, direction="down")
    fs, root = open_remote(
        {
            "path": sshd.url(sftp_dir, port=proxy.port),
            **sshd.options(port=proxy.port, host_key_fingerprint=sshd.fingerprint, retries=1),
        }
    )
    with pytest.raises(TransientConnectorError, match="SFTP"), fs.open(f"{root}/big.bin", "rb") as handle:
        handle.read()
