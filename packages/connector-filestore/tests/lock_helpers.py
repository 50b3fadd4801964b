"""Helpers for the dataset-lock tests: destinations built as the engine builds them, and holders."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

from dataloader.connector import RunContext
from dataloader.run.ledger import LeaseHolder


def destination(config: dict[str, Any], run_id: str, recipe: str = "locked") -> Any:
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    connector = FilestoreConnector(FilestoreConfig.model_validate(config))
    connector.context = RunContext(recipe_name=recipe, run_id=run_id, role="destination")
    connector.open()
    return connector


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def lock_payload(holder: LeaseHolder, *, renewed_ago_s: float, ttl_s: float = 120.0, recipe: str = "locked") -> bytes:
    renewed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=renewed_ago_s)
    return json.dumps(
        {"recipe_name": recipe, "holder": holder.to_dict(), "acquired_at": renewed.isoformat(),
         "renewed_at": renewed.isoformat(), "ttl_s": ttl_s, "nonce": "planted"}
    ).encode()


def elsewhere(run_id: str = "other-run") -> LeaseHolder:
    return LeaseHolder(run_id=run_id, host="another-host.example", pid=4242, since="2026-12-01T21:00:00+00:00")


HOLDER = """
import json, sys
from dataloader.connector import RunContext
from dataloader.run.ledger import LeaseHolder
from dataloader_filestore.config import FilestoreConfig
from dataloader_filestore.connector import FilestoreConnector

config, recipe, run_id = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
connector = FilestoreConnector(FilestoreConfig.model_validate(config))
connector.context = RunContext(recipe_name=recipe, run_id=run_id, role="destination")
connector.open()
connector.acquire_lock(recipe, LeaseHolder.current(run_id))
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes stdin (or kills this process)
connector.close()
"""


class LockHolder:
    """Another process holding the dataset lock of ``recipe``, as a running run would."""

    def __init__(self, config: dict[str, Any], recipe: str, run_id: str = "the-other-run") -> None:
        import os

        env = {**os.environ, "DATALOADER_HISTORY": "off"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(config), recipe, run_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        line = self.process.stdout.readline()
        if line.strip() != "locked":
            raise AssertionError(f"the holder did not lock: {line!r} {self.process.stderr.read()}")

    def finish(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0, self.process.stderr.read()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)
