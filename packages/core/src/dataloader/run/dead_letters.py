"""The run's dead-letter file: where rejected rows go.

Transform steps and quality checks reject rows through :meth:`dataloader.batch.Batch.reject`; the
engine takes them off each batch after every step and hands them to :class:`DeadLetters`, which
appends one JSON object per row (``record``, ``error``, ``row``, ``file``, ``timestamp``). The file
is kept when the run commits and also when it fails (it tells what was wrong); it is only created
when a row is rejected.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataloader import secrets
from dataloader.batch import ERROR_COLUMN, ROW_COLUMN
from dataloader.errors import EngineError


class DeadLetters:
    """The run's dead-letter file: one JSON object per rejected row.

    ``runtime.dead_letter_path`` (default ``errors/{recipe}/{run_id}.jsonl``) may be a local path
    or any fsspec URL (``s3://...``). The file is created on the first rejected row only; a local
    one readable by its owner only (0600: it holds row data). Known secrets are masked by value in
    every line (:func:`dataloader.secrets.mask`).
    """

    def __init__(self, recipe: Any, run_id: str) -> None:
        template = getattr(recipe.runtime, "dead_letter_path", None) or "errors/{recipe}/{run_id}.jsonl"
        self.location = template.format(recipe=recipe.name, run_id=run_id)
        self._stream: Any = None

    def _open(self) -> Any:
        if "://" in self.location:
            try:
                import fsspec
            except ImportError as exc:
                from dataloader.install import install_hint

                raise EngineError(
                    f"dead-letter path {self.location} needs fsspec: {install_hint('filestore')}"
                ) from exc
            return fsspec.open(self.location, "w", encoding="utf-8", auto_mkdir=True).open()
        path = Path(self.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def write(self, rejected: pa.Table, where: str, metadata: dict[str, Any]) -> None:
        if self._stream is None:
            self._stream = self._open()
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        record_columns = [name for name in rejected.column_names if name not in (ERROR_COLUMN, ROW_COLUMN)]
        records = rejected.select(record_columns).to_pylist()
        errors = rejected.column(ERROR_COLUMN).to_pylist()
        rows = rejected.column(ROW_COLUMN).to_pylist()
        # Rejected rows are few and leave the hot path here: a per-row loop is fine.
        for record, error, row in zip(records, errors, rows, strict=False):
            line = {"record": record, "error": error, "row": row, "file": metadata.get("file"), "timestamp": now}
            self._stream.write(secrets.mask(json.dumps(line, default=str, ensure_ascii=False), structural=False) + "\n")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            try:
                os.fsync(self._stream.fileno())
            except (AttributeError, OSError, ValueError):
                pass
            self._stream.close()
            self._stream = None

    discard = close


__all__ = ["DeadLetters"]
