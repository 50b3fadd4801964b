"""The worker side of a remote executor: one partition read, transformed and checked, staged as Parquet.

A remote executor (``dataloader-executor-dask``) sends a :class:`PartitionTask` to a worker. The
worker rebuilds the source, the cursor filter, the transform steps and the quality checks from the
recipe (no live connection crosses the wire), runs the partition through them exactly as the local
executor would, and writes the ready rows as Parquet parts under the run's staging location (a
local folder or any fsspec URL the driver can read too). It returns a :class:`PartitionResult`:
where the parts are, the partition's cursor mark, its counters and its rejected rows.

Nothing here publishes: the driver reads the parts of each finished partition and hands them to
the destination with ``job.write``, inside the run's one transaction (``Job.publish``). A task that
Dask retried leaves an orphaned attempt folder that no result names; it is never published.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataloader.batch import Batch
from dataloader.connector import Partition
from dataloader.errors import EngineError

#: Checks that judge the whole run; partitions on different workers cannot apply them.
WHOLE_RUN_CHECKS = frozenset({"unique"})


@dataclass
class PartitionTask:
    """Everything a worker needs for one partition: small and serialisable."""

    recipe: Any
    run_id: str
    state: dict[str, Any]
    partition: Partition
    staging: str


@dataclass
class PartitionResult:
    """What a worker hands back for a finished partition (the driver publishes it)."""

    partition: Partition
    key: str
    attempt: str
    parts: list[str] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    rows_out: int = 0
    rows_failed: int = 0
    cursor: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    worker: str = ""
    started_at: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": {"name": self.partition.name, "spec": self.partition.spec},
            "key": self.key,
            "attempt": self.attempt,
            "parts": self.parts,
            "rejects": self.rejects,
            "rows_read": self.rows_read,
            "rows_out": self.rows_out,
            "rows_failed": self.rows_failed,
            "cursor": self.cursor,
            "warnings": self.warnings,
            "worker": self.worker,
            "started_at": self.started_at,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionResult:
        values = dict(data)
        part = values.pop("partition")
        return cls(partition=Partition(name=part["name"], spec=part.get("spec") or {}), **values)


def partition_key(partition: Partition) -> str:
    """A stable name for a partition across runs (a Postgres snapshot id is left out: it changes every run)."""
    spec = {k: v for k, v in partition.spec.items() if k != "snapshot"}
    text = json.dumps({"name": partition.name, "spec": spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def state_key(recipe: Any, state: dict[str, Any]) -> str:
    """Names a run's staging: the same recipe config and start state stage to the same place."""
    config = {"source": recipe.source.model_dump(mode="json"), "transform": recipe.model_dump(mode="json").get("transform")}
    text = json.dumps({"config": config, "state": state}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def refuse_whole_run_checks(recipe: Any, executor: str) -> None:
    """A check over the whole run (``unique``) cannot be split over workers: refuse it, naming the key."""
    for index, check in enumerate(getattr(recipe, "quality_checks", None) or []):
        kind = check.get("check") if isinstance(check, dict) else getattr(check, "check", None)
        if kind in WHOLE_RUN_CHECKS:
            raise EngineError(
                f"quality_checks.{index}: the '{kind}' check needs the whole run in one process, which the "
                f"'{executor}' executor does not have; check it in the destination (a unique key or a merge on "
                "it), or run this recipe with runtime.executor: local",
                check=kind,
                executor=executor,
            )


class _StagedRejects:
    """Stands for the run's dead letters on a worker: rejected rows go to staging as Parquet."""

    def __init__(self, fs: Any, folder: str) -> None:
        self.fs = fs
        self.folder = folder
        self.files: list[dict[str, Any]] = []

    def write(self, rejected: pa.Table, where: str, metadata: dict[str, Any]) -> None:
        path = f"{self.folder}/rejects-{len(self.files):05d}.parquet"
        table = rejected if isinstance(rejected, pa.Table) else pa.Table.from_batches([rejected])
        with self.fs.open(path, "wb") as out:
            pq.write_table(table, out)
        kept = {k: v for k, v in metadata.items() if isinstance(v, (str, int, float, bool)) or v is None}
        self.files.append({"path": path, "where": where, "metadata": kept})


class _StagedParts:
    """A partition's ready rows as Parquet files in its attempt folder (a new file when the columns change)."""

    def __init__(self, fs: Any, folder: str) -> None:
        self.fs = fs
        self.folder = folder
        self.paths: list[str] = []
        self.rows = 0
        self._writer: Any = None
        self._stream: Any = None

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if self._writer is None or not data.schema.equals(self._writer.schema):
            self.close()
            path = f"{self.folder}/part-{len(self.paths):05d}.parquet"
            self._stream = self.fs.open(path, "wb")
            self._writer = pq.ParquetWriter(self._stream, data.schema)
            self.paths.append(path)
        if isinstance(data, pa.RecordBatch):
            self._writer.write_batch(data)
        else:
            self._writer.write_table(data)
        self.rows += data.num_rows

    def close(self) -> None:
        if self._writer is not None:
            writer, stream, self._writer, self._stream = self._writer, self._stream, None, None
            writer.close()
            stream.close()

    def __enter__(self) -> _StagedParts:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def process_partition(task: PartitionTask) -> PartitionResult:
    """Run one partition on this worker: read, cursor filter, transforms, checks; stage the result."""
    from fsspec.core import url_to_fs

    from dataloader.engine import _Run
    from dataloader.state import State

    started = time.time()
    key = partition_key(task.partition)
    attempt = uuid.uuid4().hex[:12]
    fs, root = url_to_fs(task.staging)
    folder = f"{root.rstrip('/')}/parts/{key}/{attempt}"
    fs.makedirs(folder, exist_ok=True)
    run = _Run(task.recipe, None, resume=False, full_refresh=False, host=None, run_id=task.run_id)  # type: ignore[arg-type]
    run.dead_letters = _StagedRejects(fs, folder)
    pending = State.from_dict(task.state)
    tracker = run._tracker(pending)
    parts = _StagedParts(fs, folder)
    warnings = _stage(run, task, pending, tracker, parts)
    return PartitionResult(
        partition=task.partition,
        key=key,
        attempt=attempt,
        parts=parts.paths,
        rejects=run.dead_letters.files,
        rows_read=run.rows_read,
        rows_out=parts.rows,
        rows_failed=run.rows_failed,
        cursor=tracker.export() if tracker is not None else None,
        warnings=warnings,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=started,
        seconds=time.time() - started,
    )


def _stage(run: Any, task: PartitionTask, pending: Any, tracker: Any, parts: _StagedParts) -> list[str]:
    """Read ``task``'s partition through the recipe's pipeline into ``parts``; the warnings it raised."""
    from dataloader.run.events import subscribe
    from dataloader.run.plan import close_connector, open_connector, plan

    warnings: list[str] = []

    def on_event(event: Any) -> None:
        if event.kind == "warning" and event.message:
            warnings.append(event.message)

    the_plan = plan(task.recipe, run.host)
    source = the_plan.source
    source.context = run._context("source")
    progress = {"skip": 0, "checkpointed_at": 0}
    with subscribe(run.host, run.run_id, on_event):
        open_connector(source, "source")
        try:
            with parts:
                for batch in run._batches(source, pending, task.partition):
                    ready = run._prepare(the_plan, batch, tracker, progress)
                    if ready is not None and ready.row_count:
                        parts.write(ready.to_arrow())
        finally:
            close_connector(source)
    return warnings


def staged_batches(result: PartitionResult, staging: str, batch_size: int) -> Iterator[Batch]:
    """The ready batches of a finished partition, read back from its Parquet parts (row group by row group)."""
    from fsspec.core import url_to_fs

    fs, _ = url_to_fs(staging)
    offset = 0
    for path in result.parts:
        with fs.open(path, "rb") as stream:
            parquet = pq.ParquetFile(stream)
            for record_batch in parquet.iter_batches(batch_size=batch_size):
                if record_batch.num_rows:
                    yield Batch(record_batch, {"partition": result.partition.name, "row_offset": offset})
                    offset += record_batch.num_rows


def staged_rejects(result: PartitionResult, staging: str) -> Iterator[tuple[pa.Table, str, dict[str, Any]]]:
    """A finished partition's rejected rows, for the driver's dead-letter file."""
    from fsspec.core import url_to_fs

    fs, _ = url_to_fs(staging)
    for entry in result.rejects:
        with fs.open(entry["path"], "rb") as stream:
            yield pq.read_table(stream), entry["where"], dict(entry.get("metadata") or {})


__all__ = [
    "PartitionResult",
    "PartitionTask",
    "WHOLE_RUN_CHECKS",
    "partition_key",
    "process_partition",
    "refuse_whole_run_checks",
    "staged_batches",
    "staged_rejects",
    "state_key",
]
