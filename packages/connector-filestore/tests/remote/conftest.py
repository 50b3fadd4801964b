"""Real servers on loopback for the S3 and SFTP tests.

- S3: moto's standalone server (``moto[server]``) on 127.0.0.1 with a random port, reached
  through s3fs with ``endpoint_url``; each test gets its own bucket.
- SFTP: OpenSSH's ``sshd`` from the OS packages, started with a temporary config, host key and
  authorized_keys on 127.0.0.1 with a random port. Run as root (CI), it logs in the test account
  that ``.ci/services.sh`` creates (user ``dlsftp``, password ``dlsftp-test-password``; override
  with DATALOADER_SFTP_TEST_USER / DATALOADER_SFTP_TEST_PASSWORD); run as another user, it can
  only log in that user, with keys.

When ``CI`` is set a missing server fails the tests instead of skipping them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
S3_CREDENTIALS = {"key": "testing-key-id", "secret": "testing-secret-value", "region": "us-east-1"}


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


# -- S3 ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto[server] is not installed")
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")}
    # Nothing in this process may reach real AWS, whatever the developer's environment says.
    os.environ["AWS_ACCESS_KEY_ID"] = "chain-key-id"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "chain-secret"
    os.environ.pop("AWS_PROFILE", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass
class S3Place:
    endpoint_url: str
    bucket: str
    fs: object  # a plain s3fs file system for seeding and inspecting

    @property
    def options(self) -> dict:
        return {"endpoint_url": self.endpoint_url, **S3_CREDENTIALS}

    def url(self, rel: str = "") -> str:
        return f"s3://{self.bucket}/{rel}".rstrip("/") if not rel else f"s3://{self.bucket}/{rel}"

    def key(self, rel: str) -> str:
        return f"{self.bucket}/{rel}"


@pytest.fixture
def s3(moto_endpoint: str) -> S3Place:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=S3_CREDENTIALS["key"],
        secret=S3_CREDENTIALS["secret"],
        endpoint_url=moto_endpoint,
        client_kwargs={"region_name": "us-east-1"},
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    bucket = f"dl-{uuid.uuid4().hex[:16]}"
    fs.call_s3("create_bucket", Bucket=bucket)
    return S3Place(moto_endpoint, bucket, fs)


# -- SFTP --------------------------------------------------------------------------------------
@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    password: str | None  # None: password login is not possible here
    key_path: str
    encrypted_key_path: str
    passphrase: str
    fingerprint: str
    known_hosts: str  # a known_hosts file that trusts this server
    data_root: str
    uid: int
    gid: int

    def options(self, **extra) -> dict:
        """Recipe keys for key login with the server trusted through known_hosts."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "private_key": self.key_path,
            "known_hosts": self.known_hosts,
            **extra,
        }

    def url(self, remote_path: str, port: int | None = None) -> str:
        return f"sftp://{self.host}:{port or self.port}{remote_path}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keygen(path: Path, passphrase: str = "") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "dataloader-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _fingerprint_of(pub_path: Path) -> str:
    blob = base64.b64decode(pub_path.read_text().split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _test_account() -> tuple[str, str | None]:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, None
    user = os.environ.get("DATALOADER_SFTP_TEST_USER", "dlsftp")
    try:
        pwd.getpwnam(user)
    except KeyError:
        unavailable(f"the SFTP test account {user!r} does not exist; run .ci/services.sh as root")
    return user, os.environ.get("DATALOADER_SFTP_TEST_PASSWORD", "dlsftp-test-password")


@pytest.fixture(scope="session")
def sshd() -> Iterator[SSHServer]:
    if not os.path.exists(SSHD):
        unavailable(f"{SSHD} is missing; install openssh-server (.ci/services.sh does)")
    if shutil.which("ssh-keygen") is None:
        unavailable("ssh-keygen is missing; install openssh-client")
    user, password = _test_account()
    account = pwd.getpwnam(user)
    base = Path(tempfile.mkdtemp(prefix="dataloader-sshd-"))
    base.chmod(0o755)
    _keygen(base / "host_key")
    _keygen(base / "client_key")
    _keygen(base / "client_key_encrypted", passphrase="correct horse")
    keys_dir = base / "authorized_keys"
    keys_dir.mkdir(mode=0o755)
    authorized = keys_dir / user
    authorized.write_text((base / "client_key.pub").read_text() + (base / "client_key_encrypted.pub").read_text())
    authorized.chmod(0o644)
    for key in ("client_key", "client_key_encrypted"):
        (base / key).chmod(0o600)
    data_root = base / "data"
    data_root.mkdir(mode=0o755)
    os.chown(data_root, account.pw_uid, account.pw_gid)
    port = _free_port()
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {base / 'host_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {keys_dir}/%u",
                "StrictModes no",
                "PubkeyAuthentication yes",
                f"PasswordAuthentication {'yes' if password else 'no'}",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "PermitRootLogin yes",
                "MaxStartups 50",
                "MaxSessions 50",
                "MaxAuthTries 6",
                "LogLevel INFO",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    listening = threading.Event()
    log_lines: list[str] = []

    def drain() -> None:  # read sshd's log until it exits; note when it listens
        for line in process.stderr:
            if len(log_lines) < 500:
                log_lines.append(line.rstrip())
            if "Server listening on" in line:
                listening.set()
        listening.set()

    threading.Thread(target=drain, daemon=True).start()
    listening.wait(timeout=30)
    if process.poll() is not None:
        unavailable("sshd did not start: " + " | ".join(log_lines[-5:]))
    known_hosts = base / "known_hosts"
    host_pub = (base / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    yield SSHServer(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        key_path=str(base / "client_key"),
        encrypted_key_path=str(base / "client_key_encrypted"),
        passphrase="correct horse",
        fingerprint=_fingerprint_of(base / "host_key.pub"),
        known_hosts=str(known_hosts),
        data_root=str(data_root),
        uid=account.pw_uid,
        gid=account.pw_gid,
    )
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sftp_dir(sshd: SSHServer) -> str:
    """A fresh directory on the SFTP server (the same machine), writable by the login user."""
    path = Path(sshd.data_root) / uuid.uuid4().hex[:12]
    path.mkdir(mode=0o755)
    os.chown(path, sshd.uid, sshd.gid)
    return str(path)


# -- a TCP proxy that cuts connections ---------------------------------------------------------
class CuttingProxy:
    """Forwards 127.0.0.1:<port> to a target port and cuts connections mid-stream.

    ``cut_after`` is, per connection in order, how many bytes may pass in ``direction`` ("down":
    server to client, "up") before the proxy closes both sides (``None``: never); connections
    past the end of the list are never cut. An int means "cut the first connection only".
    """

    def __init__(self, target_port: int, *, cut_after, direction: str = "down") -> None:
        self.target_port = target_port
        self.plan = [cut_after] if isinstance(cut_after, int) else list(cut_after)
        self.direction = direction
        self.connections = 0
        self.cut_count = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                limit = self.plan[self.connections] if self.connections < len(self.plan) else None
                self.connections += 1
            state = {"bytes": 0, "limit": limit}
            pair = (client, upstream)
            down, up = self.direction == "down", self.direction == "up"
            threading.Thread(target=self._pump, args=(upstream, client, pair, down, state), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream, pair, up, state), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pair, counting: bool, state: dict) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if counting and state["limit"] is not None:
                    state["bytes"] += len(data)
                    if state["bytes"] > state["limit"]:
                        with self._lock:
                            self.cut_count += 1
                        break
                sink.sendall(data)
        except OSError:
            pass
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@pytest.fixture
def cutting_proxy(sshd: SSHServer) -> Iterator:
    made: list[CuttingProxy] = []

    def make(**kwargs) -> CuttingProxy:
        proxy = CuttingProxy(sshd.port, **kwargs)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


# -- recipes through the engine ----------------------------------------------------------------
@pytest.fixture
def run(tmp_path: Path) -> Iterator:
    """``run(source, destination, name=..., **runtime)`` through the real engine, with only this
    package registered and one state folder per test."""
    import dataloader_filestore.plugin
    from dataloader import run_recipe
    from dataloader.plugins import PluginHost, use_host
    from dataloader.recipe import Recipe
    from dataloader.state import LocalStateBackend

    host = PluginHost(load_entrypoints=False)
    host.register(dataloader_filestore.plugin, name="filestore", distribution="dataloader-connector-filestore")
    state = LocalStateBackend(tmp_path / "state")

    def runner(source: dict, destination: dict, name: str = "t", **runtime):
        data = {"name": name, "source": source, "destination": destination}
        if runtime:
            data["runtime"] = runtime
        return run_recipe(Recipe.from_dict(data), state, history=False)

    with use_host(host):
        yield runner


def read_local_dataset(path: Path):
    """The rows a manifest-aware reader sees in a local Parquet dataset directory (None if none)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = path / "_dataloader_manifest.json"
    if not manifest.exists():
        return None
    parts = json.loads(manifest.read_text())["parts"]
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(path / part["name"]) for part in parts])
