"""The BigQuery emulator for the tests: local-bigquery in its own venv, on loopback.

The venv (Python 3.13, ``emulator/requirements.txt``) is built on first use at
``DATALOADER_BIGQUERY_EMULATOR_VENV`` (tox sets it inside its env dir), and rebuilt when the
requirements change. The Python 3.13 interpreter is ``DATALOADER_BIGQUERY_EMULATOR_PYTHON``, else
pyenv's 3.13, else ``python3.13`` on PATH. The server listens on two free loopback ports (REST and the
Storage Read API's gRPC) with its data in a temporary folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "emulator"
REQUIREMENTS = HERE / "requirements.txt"
LAUNCHER = HERE / "launch.py"
PROJECT = "dataloader-test"
START_TIMEOUT_S = 120.0


class EmulatorUnavailable(RuntimeError):
    """The emulator could not be built or started (the message says why)."""


def find_python() -> str:
    explicit = os.environ.get("DATALOADER_BIGQUERY_EMULATOR_PYTHON")
    if explicit:
        return explicit
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(root, "versions", "3.13*", "bin", "python3.13")))
    if candidates:
        return candidates[-1]
    found = shutil.which("python3.13")
    if found and "/shims/" not in found:  # a pyenv shim without the version selected fails
        return found
    raise EmulatorUnavailable("no Python 3.13 found (local-bigquery needs it); set DATALOADER_BIGQUERY_EMULATOR_PYTHON")


def venv_dir() -> Path:
    explicit = os.environ.get("DATALOADER_BIGQUERY_EMULATOR_VENV")
    if explicit:
        return Path(explicit)
    return Path(os.path.expanduser("~/.cache/dataloader/bigquery-emulator"))


def ensure_venv() -> Path:
    """The emulator venv's python, building the venv if it is missing or out of date."""
    venv = venv_dir()
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + LAUNCHER.read_bytes()).hexdigest()
    marker = venv / ".dataloader-requirements"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions never build it at once
        if marker.exists() and marker.read_text() == wanted and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [find_python(), "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise EmulatorUnavailable(f"{' '.join(step)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        marker.write_text(wanted)
    return python


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    rest_port: int
    grpc_port: int
    log: Path
    project: str = PROJECT

    @property
    def api_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def storage_api_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def connection_keys(self) -> dict[str, object]:
        """The recipe keys that point the connector at this emulator."""
        return {
            "project": self.project,
            "anonymous": True,
            "api_endpoint": self.api_endpoint,
            "storage_api_endpoint": self.storage_api_endpoint,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ready(emulator: Emulator) -> bool:
    url = f"{emulator.api_endpoint}/bigquery/v2/projects/{emulator.project}/datasets"
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - loopback only
            return reply.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start(data_dir: Path, storage_emulator_host: str | None = None) -> Emulator:
    """Build the venv if needed, start the emulator and wait until it answers.

    With ``storage_emulator_host`` (``http://127.0.0.1:N``), load jobs read ``gs://`` URIs from
    that GCS emulator.
    """
    python = ensure_venv()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "emulator.log"
    rest_port, grpc_port = free_port(), free_port()
    command = [
        str(python), str(LAUNCHER), str(data_dir / "extensions"), "serve",
        "--host", "127.0.0.1", "--port", str(rest_port), "--grpc-port", str(grpc_port),
        "--project", PROJECT, "--data-dir", str(data_dir / "data"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "STORAGE_EMULATOR_HOST"))}
    if storage_emulator_host:
        env["STORAGE_EMULATOR_HOST"] = storage_emulator_host
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir)
    emulator = Emulator(process, rest_port, grpc_port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorUnavailable(f"the emulator exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if _ready(emulator):
            return emulator
        time.sleep(0.2)  # polling a starting server, not waiting on the code under test
    emulator.stop()
    raise EmulatorUnavailable(f"the emulator did not answer within {START_TIMEOUT_S:.0f}s:\n{log.read_text(errors='replace')[-3000:]}")


if __name__ == "__main__":  # build the venv ahead of the tests: python bqemulator.py
    print(ensure_venv(), file=sys.stderr)
