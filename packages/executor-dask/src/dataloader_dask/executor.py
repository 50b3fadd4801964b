"""The ``dask`` executor: a recipe's partitions run as Dask tasks, the driver publishes them once.

Dask schedules, retries and reports; this module only maps partitions to tasks and results back to
the engine's one commit protocol:

1. the driver asks the source for its partitions (small, serialisable descriptions);
2. each unfinished partition becomes one task running ``dataloader.run.remote.process_partition``
   on a worker: the recipe is rebuilt there, the rows are read, filtered, transformed, checked and
   staged as Parquet under the run's staging folder (``runtime.staging``: shared storage);
3. for every result Dask returns, the driver records a manifest naming that attempt as the
   partition's final one, then publishes its rows through ``job.write`` in partition order, inside
   the run's transaction; a retried task's other attempt is never named, so never published;
4. after the commit the staging folder is removed. A driver killed before the commit leaves the
   manifests: the rerun (same recipe, same start state) reuses the finished partitions and
   computes only the others.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from dataloader.config import ConfigModel
from dataloader.errors import DataLoaderError, EngineError
from dataloader.run.executors import WHOLE, Job
from dataloader.run.remote import (
    PartitionResult,
    partition_key,
    process_partition,
    refuse_whole_run_checks,
    state_key,
)
from pydantic import Field

log = logging.getLogger("dataloader.dask")


class DaskExecutorConfig(ConfigModel):
    """``runtime`` keys of the ``dask`` executor."""

    #: ``tcp://host:8786`` for an existing cluster, or ``local`` for a LocalCluster on this machine.
    scheduler: str = "local"
    #: Where workers stage their Parquet parts: a folder every worker and the driver see, or an fsspec URL.
    staging: str = ".dataloader/staging"
    #: Worker processes of a ``local`` cluster (default: one per CPU core).
    workers: int | None = Field(default=None, ge=1)
    #: How often Dask may run a partition's task again after it failed (a lost worker is retried by Dask too).
    task_retries: int = Field(default=2, ge=0)
    #: How long to wait for an existing cluster's scheduler to answer.
    connect_timeout_s: float = Field(default=30.0, gt=0)


class DaskExecutor:
    """Partitions as Dask tasks on ``runtime.scheduler``; staged rows published by the driver."""

    def __init__(self, config: DaskExecutorConfig | None = None) -> None:
        self.config = config or DaskExecutorConfig()

    # -- the run --------------------------------------------------------------------------
    def run(self, job: Job) -> None:
        recipe = job.recipe
        if job.publish is None:
            raise EngineError("the dask executor needs a job that can publish staged partitions (dataloader >= 0.1 engine)")
        if recipe.runtime.checkpoint_every:
            raise EngineError(
                "runtime.checkpoint_every does not apply with runtime.executor: dask (the run resumes by "
                "finished partitions instead); remove checkpoint_every",
                key="runtime.checkpoint_every",
            )
        refuse_whole_run_checks(recipe, "dask")
        partitions = job.partitions()
        if partitions == [WHOLE]:
            # A source without partitions is one read: it runs here, on the driver, where the
            # source is surely reachable; nothing to stage, nothing gained from a worker.
            self._note(job, "the source has no partitions: it is read on the driver")
            for batch in job.process(WHOLE):
                job.write(batch)
            return
        staging = self._staging_root(recipe, job.state)
        self._forget_other_runs(recipe, staging)
        finished = self._finished(staging)
        job.after_commit.append(lambda: self._remove(staging))
        client, cluster = self._connect()
        try:
            self._note(job, f"dask dashboard: {client.dashboard_link}")
            self._run_on(client, job, partitions, staging, finished)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _run_on(self, client: Any, job: Job, partitions: list[Any], staging: str, finished: dict[str, PartitionResult]) -> None:
        from distributed import as_completed

        keys = [partition_key(p) for p in partitions]
        futures = {}
        for index, (partition, key) in enumerate(zip(partitions, keys, strict=True)):
            if key in finished:
                continue
            future = client.submit(
                process_partition,
                job.task(partition, staging),
                key=f"dataloader-{job.run_id}-{index}-{key}",
                retries=self.config.task_retries,
                pure=False,
            )
            futures[future] = index
        reused = len(partitions) - len(futures)
        if reused:
            self._note(job, f"{reused} of {len(partitions)} partitions were finished by an earlier attempt; reusing them")
        results: dict[int, PartitionResult] = {i: finished[k] for i, k in enumerate(keys) if k in finished}
        published = 0
        pending = as_completed(list(futures))
        try:
            for future in pending:
                index = futures[future]
                results[index] = self._result(future, partitions[index])
                self._record(staging, results[index])
                while published < len(partitions) and published in results:
                    job.publish(results.pop(published), staging)
                    published += 1
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        while published < len(partitions):
            job.publish(results.pop(published), staging)
            published += 1

    def _result(self, future: Any, partition: Any) -> PartitionResult:
        try:
            result = future.result()
        except DataLoaderError as exc:
            if partition.name not in exc.message:  # a check's row number counts within its partition
                exc.message = f"partition {partition.name}: {exc.message}"
                exc.args = (exc.message,)
            exc.context.setdefault("partition", partition.name)
            raise
        except Exception as exc:
            raise EngineError(
                f"partition {partition.name} failed on the dask cluster: {type(exc).__name__}: {exc}",
                partition=partition.name,
            ) from exc
        if not isinstance(result, PartitionResult):
            raise EngineError(f"partition {partition.name}: the dask task returned {type(result).__name__}, not a result")
        return result

    # -- cluster --------------------------------------------------------------------------
    def _connect(self) -> tuple[Any, Any]:
        from distributed import Client, LocalCluster

        if self.config.scheduler == "local":
            workers = self.config.workers or os.cpu_count() or 1
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
            return Client(cluster), cluster
        try:
            return Client(self.config.scheduler, timeout=self.config.connect_timeout_s), None
        except Exception as exc:
            raise EngineError(
                f"runtime.scheduler: cannot reach the dask scheduler at {self.config.scheduler}: {type(exc).__name__}: {exc}; "
                "start it (dask scheduler) or use scheduler: local",
                scheduler=self.config.scheduler,
            ) from exc

    @staticmethod
    def _note(job: Job, message: str) -> None:
        note = getattr(job, "note", None)
        if callable(note):
            note(message)
        log.info("%s", message)

    # -- staging and its manifests --------------------------------------------------------
    def _staging_root(self, recipe: Any, state: dict[str, Any]) -> str:
        base = self.config.staging
        if "://" not in base:
            base = os.path.abspath(base)
        return f"{base.rstrip('/')}/{recipe.name}/{state_key(recipe, state)}"

    @staticmethod
    def _fs(url: str) -> tuple[Any, str]:
        from fsspec.core import url_to_fs

        return url_to_fs(url)

    def _forget_other_runs(self, recipe: Any, staging: str) -> None:
        """Staging of another start state belongs to a run that committed or can never resume: remove it."""
        parent = staging.rsplit("/", 1)[0]
        fs, root = self._fs(parent)
        if not fs.exists(root):
            return
        mine = staging.rsplit("/", 1)[1]
        for entry in fs.ls(root, detail=False):
            if entry.rstrip("/").rsplit("/", 1)[-1] != mine:
                fs.rm(entry, recursive=True)

    def _finished(self, staging: str) -> dict[str, PartitionResult]:
        fs, root = self._fs(staging)
        folder = f"{root}/done"
        if not fs.exists(folder):
            return {}
        found: dict[str, PartitionResult] = {}
        for path in fs.ls(folder, detail=False):
            if not path.endswith(".json"):
                continue
            with fs.open(path, "rb") as stream:
                result = PartitionResult.from_dict(json.loads(stream.read()))
            if all(fs.exists(part) for part in result.parts + [r["path"] for r in result.rejects]):
                found[result.key] = result
        return found

    def _record(self, staging: str, result: PartitionResult) -> None:
        """Name this attempt as the partition's final one: write to a temporary name, then move it in place."""
        fs, root = self._fs(staging)
        fs.makedirs(f"{root}/done", exist_ok=True)
        final = f"{root}/done/{result.key}.json"
        temporary = f"{final}.{result.attempt}.tmp"
        with fs.open(temporary, "wb") as stream:
            stream.write(json.dumps(result.to_dict(), default=str).encode("utf-8"))
        fs.mv(temporary, final)

    def _remove(self, staging: str) -> None:
        fs, root = self._fs(staging)
        if fs.exists(root):
            fs.rm(root, recursive=True)


__all__ = ["DaskExecutor", "DaskExecutorConfig"]
