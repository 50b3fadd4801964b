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
