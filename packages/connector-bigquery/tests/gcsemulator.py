"""The GCS emulator for the staging tests: gcp-storage-emulator (pure Python) on loopback.

It runs from the test environment's own interpreter on a free port, in memory, with one bucket.
The BigQuery emulator is pointed at it (``STORAGE_EMULATOR_HOST``) so that its load jobs read the
``gs://`` objects the destination uploads.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bqemulator import free_port

BUCKET = "dataloader-staging"
START_TIMEOUT_S = 60.0


class GcsUnavailable(RuntimeError):
    """The GCS emulator could not be started (the message says why)."""


@dataclass
class GcsEmulator:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    bucket: str = BUCKET

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ready(server: GcsEmulator) -> bool:
    try:
        with urllib.request.urlopen(f"{server.endpoint}/storage/v1/b/{server.bucket}", timeout=10) as reply:  # noqa: S310
            return reply.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start(data_dir: Path) -> GcsEmulator:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "gcs-emulator.log"
    port = free_port()
    command = [
        sys.executable, "-m", "gcp_storage_emulator", "start",
        "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET,
    ]
    with open(log, "wb") as out:
        try:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir)
        except OSError as exc:
            raise GcsUnavailable(f"{' '.join(command)}: {exc}") from exc
    server = GcsEmulator(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GcsUnavailable(f"the GCS emulator exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if _ready(server):
            return server
        time.sleep(0.1)  # polling a starting server
    server.stop()
    raise GcsUnavailable(f"the GCS emulator did not answer within {START_TIMEOUT_S:.0f}s:\n{log.read_text(errors='replace')[-3000:]}")
