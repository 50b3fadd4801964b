"""The engine: plan a run, then move batches from the source through the steps into the destination.

One run::

    plan      build source, destination and steps from the registry (no I/O yet)
    recover   if the last run of this recipe died after its destination committed, adopt the state
              the destination committed with it (destinations store it inside their transaction)
    mark      save the committed state with a checkpoint naming this run, so a crash is detectable
    read      a reader thread pulls batches from the source into a bounded queue
    write     the caller's thread re-chunks to ``runtime.batch_size``, drops boundary rows already
              loaded, advances the cursor, applies the steps and quality checks, and writes
    commit    the destination publishes atomically; only then is the new state saved

Any failure aborts the destination (it is left as before the run) and leaves the state as it was.
A transient connector failure retries the whole run with backoff: the run is a transaction, so a
retry can neither lose nor duplicate rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dataloader import faults
from dataloader.batch import Batch, rechunk
from dataloader.connector import (
    Capabilities,
    CommitsState,
    Fingerprints,
    LocksRecipe,
    Partition,
    Partitions,
    RunContext,
)
from dataloader.errors import (
    ConnectorError,
    DataLoaderError,
    EngineError,
    RunInterrupted,
    StateError,
    TransformError,
)
from dataloader.incremental import CursorTracker
from dataloader.plugins import PluginHost, get_host
from dataloader.recipe import Recipe
from dataloader.recipe.models import connector_type
from dataloader.run.events import EventHandler, Observers, RunEvent, RunInfo, RunResult, new_run_id, subscribe
from dataloader.run.events import now as _now
from dataloader.run.executors import WHOLE, Executor, Job
from dataloader.run.ledger import LeaseHolder, Ledger
from dataloader.run.many import run_each
from dataloader.run.pipeline import read_in_thread as _read_in_thread
from dataloader.run.plan import (
    Plan,
    check_connections,
    context_for,
    output_schema,
    plan,
    preflight,
    resolve_state_backend,
)
from dataloader.run.plan import abort_connector as _abort
from dataloader.run.plan import call_optional as _call
from dataloader.run.plan import close_connector as _close
from dataloader.run.plan import estimate as _estimate
from dataloader.run.plan import open_connector as _open
from dataloader.state import LeasingBackend, State, StateBackend

log = logging.getLogger("dataloader.engine")

# -- the public entry points ------------------------------------------------------------------
def run_recipe(
    recipe: Recipe,
    state_backend: StateBackend | None = None,
    *,
    resume: bool = False,
    full_refresh: bool = False,
    on_event: EventHandler | None = None,
    host: PluginHost | None = None,
    history: Any = None,
) -> RunResult:
    """Run one recipe and return its :class:`RunResult`.

    Raises the run's :class:`~dataloader.errors.DataLoaderError` when it fails, after aborting the
    destination and recording the run; the exception's ``context["result"]`` holds the result.
    ``resume`` continues after an interrupted run (see docs/reliability.md); ``full_refresh``
    ignores the saved cursor. ``history`` is a :class:`dataloader.history.RunHistory` (default: the
    SQLite file ``.dataloader/runs.db``; pass ``False`` to record nothing).
    """
    from dataloader.history import default_history

    backend = state_backend if state_backend is not None else resolve_state_backend(recipe, host=host)
    run = _Run(recipe, backend, resume=resume, full_refresh=full_refresh, host=host)
    with subscribe(run.host, run.run_id, on_event):
        result = run.execute()
    recorder = default_history() if history is None else history
    if recorder:
        try:
            recorder.record(result)
        except Exception as exc:  # history is a record, never a reason to fail a committed run
            log.warning("could not record run %s in the run history: %s", result.run_id, exc)
        _mirror_schema(recorder, run)
    if run.error is not None:
        run.error.context["result"] = result
        raise run.error
    return result


def run_many(
    recipes: list[Recipe],
    backend_for: Callable[[Recipe], StateBackend],
    *,
    jobs: int = 1,
    **options: Any,
) -> list[RunResult | DataLoaderError]:
    """Run several recipes, one after another or ``jobs`` at a time; failures are returned, not raised.

    ``options`` go to :func:`run_recipe` for each; see :func:`dataloader.run.many.run_each`.
    """
    return run_each(recipes, backend_for, run_recipe, jobs=jobs, **options)


def run_recipe_from_yaml(
    path: str | Path,
    state_backend: StateBackend | None = None,
    *,
    vars: dict[str, Any] | None = None,
    **options: Any,
) -> RunResult:
    """``from_yaml`` then ``run_recipe``."""
    from dataloader.recipe import from_yaml

    return run_recipe(from_yaml(path, vars=vars, host=options.get("host")), state_backend, **options)


# -- one run -----------------------------------------------------------------------------------
class _Run:
    def __init__(
        self,
        recipe: Recipe,
        backend: StateBackend,
        *,
        resume: bool,
        full_refresh: bool,
        host: PluginHost | None,
        run_id: str | None = None,
    ) -> None:
        self.recipe = recipe
        self.backend = backend
        self.resume = resume
        self.full_refresh = full_refresh
        self.host = host or get_host()
        self.observers = Observers(self.host)
        self.run_id = run_id or new_run_id()
        self.error: DataLoaderError | None = None
        self.started = time.monotonic()
        self.started_at = _now()
        self.info = RunInfo(recipe, self.run_id, self.started_at)
        self.rows_read = 0
        self.rows_written = 0
        self.rows_failed = 0
        self.total_estimate: int | None = None
        self.state_before: dict[str, Any] = {}
        self.state_after: dict[str, Any] = {}
        self.dead_letters: Any = None
        self.attempts = 0
        self.schema_outcome: Any = None
        self.holder = LeaseHolder.current(self.run_id)
        self.fingerprint: dict[str, Any] | None = None
        self.lease: Any = None
        self.lease_problem: DataLoaderError | None = None
        self.began = False

    # events and hooks: one channel, the lifecycle hooks (reporters observe ``run_event``) ----
    def emit(self, kind: str, message: str | None = None, result: RunResult | None = None) -> None:
        event = RunEvent(
            kind=kind,
            recipe_name=self.recipe.name,
            run_id=self.run_id,
            rows_read=self.rows_read,
            rows_written=self.rows_written,
            total_estimate=self.total_estimate,
            elapsed_s=time.monotonic() - self.started,
            message=message,
            result=result,
        )
        self.observers.notify("run_event", run=self.info, event=event)

    def hook(self, name: str, **kwargs: Any) -> None:
        self.observers.notify(name, run=self.info, **kwargs)

    # the run ------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        self.hook("run_started")
        self.emit("run_started")
        try:
            self._leased(self._attempts)
        except DataLoaderError as exc:
            self.error = exc
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM turned into this by the command line
            self.error = RunInterrupted.from_signal(exc, self.recipe.name)
        except Exception as exc:  # a bug or an untranslated driver error: still one clear message
            self.error = EngineError(f"{type(exc).__name__}: {exc}", recipe=self.recipe.name)
            self.error.__cause__ = exc
        result = self._result()
        self.hook("run_finished", result=result)
        self.emit("run_finished", result=result)
        return result

    def _leased(self, body: Callable[[], None]) -> None:
        """Run ``body`` holding the state backend's lease on the recipe, renewed while it runs."""
        acquire = getattr(self.backend, "acquire_lease", None)
        if not isinstance(self.backend, LeasingBackend) or not callable(acquire):
            body()
            return
        ttl = float(self.recipe.runtime.lease_ttl_s)
        self.lease = acquire(self.recipe.name, self.holder, ttl)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(stop, ttl / 3), name="dataloader-lease", daemon=True)
        renewer.start()
        try:
            body()
        finally:
            stop.set()
            renewer.join(timeout=5)
            try:
                self.lease.release()
            except Exception as exc:  # an expired lease needs no release
                log.warning("could not release the lease of '%s': %s", self.recipe.name, exc)

    def _renew(self, stop: threading.Event, every: float) -> None:
        while not stop.wait(every):
            try:
                self.lease.renew()
            except DataLoaderError as exc:
                self.lease_problem = exc
                return
            except Exception as exc:  # a network blip: the next renewal may work; expiry is far
                log.warning("could not renew the lease of '%s': %s", self.recipe.name, exc)

    def _still_leased(self) -> None:
        if self.lease_problem is not None:
            raise self.lease_problem

    def _result(self) -> RunResult:
        if isinstance(self.error, RunInterrupted):
            status = "interrupted"
        elif self.error is not None:
            status = "failed"
        elif self.rows_failed:
            status = "partial_success"
        else:
            status = "success"
        return RunResult(
            status=status,
            recipe_name=self.recipe.name,
            run_id=self.run_id,
            rows_read=self.rows_read,
            rows_written=self.rows_written if self.error is None else 0,
            rows_failed=self.rows_failed,
            duration_s=time.monotonic() - self.started,
            started_at=self.started_at,
            finished_at=_now(),
            error=None if self.error is None else str(self.error),
            state_before=self.state_before,
            state_after=self.state_after if self.error is None else self.state_before,
            dead_letter_path=getattr(self.dead_letters, "location", None) if self.rows_failed else None,
            attempts=self.attempts,
            schema_changes=_schema_changes(self.schema_outcome) if self.error is None else [],
        )

    def _attempts(self) -> None:
        from dataloader.retry import retrying

        policy = self.recipe.runtime.retries

        def attempt() -> None:
            self.attempts += 1
            self.rows_read = self.rows_written = self.rows_failed = 0
            self._attempt()

        def before_sleep(exc: BaseException, delay: float) -> None:
            self.emit("warning", f"transient failure, retrying in {delay:.1f}s: {exc}")

        retrying(attempt, policy, before_sleep=before_sleep)

    def _attempt(self) -> None:
        the_plan = plan(self.recipe, self.host)
        source, destination = the_plan.source, the_plan.destination
        source.context = self._context("source")
        destination.context = self._context("destination")
        self.ledger = Ledger(
            self.recipe.name,
            self.run_id,
            destination,
            commits_state=_commits_state(destination),
            reopen=lambda: self._fresh_destination(),
            warn=lambda message: self.emit("warning", message),
        )
        _open(source, "source")
        try:
            _open(destination, "destination")
            locked = False
            try:
                problems = check_connections(the_plan)
                if problems:
                    raise EngineError("preflight failed, nothing was written: " + "; ".join(problems), problems=problems)
                self.ledger.extra = the_plan.published  # the schema versions, stored with each commit
                locked = self._lock(destination)
                self._attempt_opened(the_plan)
                self.schema_outcome = the_plan.schema_outcome
            finally:
                if locked:
                    _call(destination, "release_lock", self.recipe.name)
                _close(destination)
        finally:
            _close(source)

    def _attempt_opened(self, the_plan: Plan) -> None:
        committed = self._load_state()
        self.state_before = committed.to_dict()
        resume_rows = 0 if self.full_refresh else int(committed.checkpoints.get("rows_done") or 0)
        start = committed.copy()
        start.checkpoints = {}
        pending = State() if self.full_refresh else start.copy()
        self.fingerprint = _fingerprint(the_plan.source, pending)
        if resume_rows:
            resume_rows = self._check_source_unchanged(committed, resume_rows)
        self._mark_started(start, resume_rows)
        self.last_checkpoint: State | None = None
        try:
            self._move(the_plan, pending, start, resume_rows)
        except BaseException:
            if self.last_checkpoint is None:
                self._clear_mark(committed)
            raise

    def _lock(self, destination: Any) -> bool:
        """Hold the destination's per-recipe lock for the attempt, where it offers one."""
        caps = getattr(destination, "capabilities", None)
        if not (isinstance(caps, Capabilities) and caps.locks) or not isinstance(destination, LocksRecipe):
            return False
        destination.acquire_lock(self.recipe.name, self.holder)
        return True

    def _fresh_destination(self) -> Any:
        connector = self.host.registry.get("connector", connector_type(self.recipe, "destination")).build(self.recipe.destination)
        connector.context = self._context("destination")
        return connector

    def _check_source_unchanged(self, committed: State, resume_rows: int) -> int:
        """A resumed run skips rows by count; that is right only if the source still holds the same rows."""
        before = committed.checkpoints.get("fingerprint")
        if before is None or self.fingerprint is None or before == self.fingerprint:
            return resume_rows
        interrupted = committed.checkpoints.get("run_id") or committed.checkpoints.get("resumed_run_id")
        mode = getattr(self.recipe.destination, "write_mode", "append")
        if mode == "merge":
            self.emit(
                "warning",
                f"the source changed since run {interrupted} checkpointed {resume_rows:,} rows; "
                "reading it again from the start (a merge writes each key once)",
            )
            return 0
        raise EngineError(
            f"the source changed since run {interrupted} was interrupted after committing {resume_rows:,} of its rows; "
            "a resumed append cannot tell which of the new rows it already holds, so nothing was written. "
            "Restore the source, or load it again from scratch with --full-refresh "
            "(after emptying what the interrupted run appended)",
            rows_done=resume_rows,
        )

    # state and recovery -------------------------------------------------------------------
    def _load_state(self) -> State:
        try:
            local = self.backend.load(self.recipe.name)
        except DataLoaderError:
            raise
        except Exception as exc:
            raise StateError(f"could not read the state of '{self.recipe.name}': {exc}") from exc
        interrupted = (local.get("checkpoints") or {}).get("run_id")
        truth, record = self.ledger.reconcile(local)
        committed = State.from_dict(truth)
        if record is not None and truth is not local:
            committed.checkpoints = _progress(committed.checkpoints)
            self._save(committed)
        elif interrupted:
            committed.checkpoints = _progress(committed.checkpoints)
            if not committed.checkpoints:
                self.emit("warning", f"run {interrupted} was interrupted before it committed; restarting cleanly from the last committed state")
        if committed.checkpoints:
            self.emit(
                "warning",
                f"resuming run {committed.checkpoints.get('resumed_run_id')} after its last checkpoint "
                f"({committed.checkpoints['rows_done']:,} source rows loaded)",
            )
        return committed

    def _save(self, state: State) -> None:
        try:
            self.backend.save(self.recipe.name, state.to_dict())
        except DataLoaderError:
            raise
        except Exception as exc:
            raise StateError(f"could not save the state of '{self.recipe.name}': {exc}") from exc

    def _mark_started(self, committed: State, resume_rows: int = 0) -> None:
        """Save the committed state plus a checkpoint naming this run, before touching anything."""
        self._save(self._checkpoint_state(committed, resume_rows))

    def _checkpoint_state(self, start: State, rows_done: int) -> State:
        """The run-start state plus this run's progress: what a crash resumes from.

        Cursors and source marks stay at their run-start values; ``rows_done`` source rows are
        already in the destination and are skipped (not written) when the run resumes, provided
        the source's ``fingerprint`` is still the same.
        """
        marked = start.copy()
        marked.checkpoints = {"run_id": self.run_id, "started_at": self.started_at}
        if rows_done:
            marked.checkpoints["rows_done"] = rows_done
        if self.fingerprint is not None:
            marked.checkpoints["fingerprint"] = self.fingerprint
        return marked

    def _clear_mark(self, committed: State) -> None:
        try:
            self._save(committed)
        except DataLoaderError as exc:
            log.warning("could not clear the run mark: %s", exc)

    def _context(self, role: str) -> RunContext:
        return context_for(self.recipe, self.run_id, role, self.host.registry)

    # moving rows --------------------------------------------------------------------------
    def _move(self, the_plan: Plan, pending: State, start: State, resume_rows: int) -> None:
        from dataloader.run.dead_letters import DeadLetters

        destination = the_plan.destination
        self.dead_letters = DeadLetters(self.recipe, self.run_id)
        mode = getattr(self.recipe.destination, "write_mode", "append")
        self.began = False
        try:
            self.total_estimate = _estimate(the_plan.source, pending)
            if self.total_estimate is not None:
                self.emit("run_started")
            self._load_rows(the_plan, pending, start, resume_rows, mode)
            self._check_limits(final=True)
            if not self.began:
                _call(destination, "begin", None, mode, pending)
                self.began = True
            pending.metadata.update(
                {
                    "last_run_id": self.run_id,
                    "last_run_at": _now(),
                    "rows_written": self.rows_written,
                    # What show-state tells: this copy mirrors the destination's commit record, or is all there is.
                    "committed_in": connector_type(self.recipe, "destination") if self.ledger.commits_state else None,
                }
            )
            self.dead_letters.close()
            self._still_leased()
            faults.point("before_commit")
            self.ledger.commit(pending, self.ledger.published(final=True, rows=self.rows_written, mode=mode))
            faults.point("after_commit")
            self.began = False
            self.state_after = pending.to_dict()
            self.emit("committed")
            self._save(pending)
            self._after_commit()
        except BaseException:
            if self.began:
                _abort(destination)
            self.dead_letters.discard()
            raise

    def _load_rows(self, the_plan: Plan, pending: State, start: State, resume_rows: int, mode: str) -> None:
        """Hand the pipeline to the recipe's executor; write what it produces, checkpointing as due."""
        source, destination = the_plan.source, the_plan.destination
        tracker = self._tracker(pending)
        progress = {"skip": resume_rows, "checkpointed_at": 0}
        every = self.recipe.runtime.checkpoint_every

        def process(partition: Partition) -> Iterator[Batch]:
            for batch in self._batches(source, pending, partition):
                batch = self._prepare(the_plan, batch, tracker, progress)
                if batch is not None and batch.row_count:
                    yield batch

        def process_concurrently(partitions: list[Partition], workers: int) -> Iterator[Batch]:
            from dataloader.run.pipeline import read_partitions

            producers = [lambda p=p: source.read_partition(p, pending) for p in partitions]
            stream = read_partitions(producers, workers, self.recipe.runtime.queue_size)
            for batch in self._batches(source, pending, stream=stream):
                batch = self._prepare(the_plan, batch, tracker, progress)
                if batch is not None and batch.row_count:
                    yield batch

        def write(batch: Batch) -> None:
            self._write(destination, batch, pending, mode)
            if every and self.began and self.rows_read - progress["checkpointed_at"] >= every:
                self._checkpoint(destination, start, mode)
                progress["checkpointed_at"] = self.rows_read

        def publish(result: Any, staging: str) -> None:
            self._publish(result, staging, write, tracker)

        self.partitions_done: list[dict[str, Any]] = []
        partitions = lambda: self._partitions(source, pending)  # noqa: E731
        job = Job(self.recipe, self.run_id, partitions=partitions, process=process, write=write,
                  state=pending.to_dict(), publish=publish, note=lambda message: self.emit("info", message),
                  process_concurrently=process_concurrently)
        self.job = job
        self._executor().run(job)
        self._record_partitions(pending)
        if tracker is not None:
            tracker.save_to(pending)

    def _publish(self, result: Any, staging: str, write: Callable[[Batch], None], tracker: CursorTracker | None) -> None:
        """One partition a remote executor finished: its staged rows, rejects, marks and timings."""
        from dataloader.run.remote import staged_batches, staged_rejects

        for message in result.warnings:
            self.emit("warning", message)
        self.rows_read += result.rows_read
        for batch in staged_batches(result, staging, self.recipe.runtime.batch_size):
            write(batch)
        for rejected, where, metadata in staged_rejects(result, staging):
            self.rows_failed += rejected.num_rows
            self.dead_letters.write(rejected, where, metadata)
        self._check_limits()
        if tracker is not None and result.cursor is not None:
            tracker.combine(result.cursor)
        self.partitions_done.append(
            {"partition": result.partition.name, "rows_read": result.rows_read, "rows_written": result.rows_out,
             "rows_failed": result.rows_failed, "worker": result.worker, "seconds": round(result.seconds, 3)}
        )
        self.emit(
            "info",
            f"partition {result.partition.name}: {result.rows_out:,} rows on {result.worker} "
            f"in {result.seconds:.1f}s ({self.rows_written:,} rows in total)",
        )

    def _record_partitions(self, pending: State) -> None:
        """What the run history keeps of a remote run: partitions, workers, timings."""
        pending.metadata.pop("partitions", None)  # an earlier remote run's, not this run's
        shown = self.partitions_done
        if shown:
            pending.metadata["partitions"] = {
                "count": len(shown),
                "workers": sorted({p["worker"] for p in shown}),
                "seconds": round(sum(p["seconds"] for p in shown), 3),
                "list": shown[:100],
            }

    def _after_commit(self) -> None:
        for callback in getattr(getattr(self, "job", None), "after_commit", None) or []:
            try:
                callback()
            except Exception as exc:  # tidying after a commit never fails the run
                log.warning("after the commit of run %s: %s", self.run_id, exc)

    def _prepare(self, the_plan: Plan, batch: Batch, tracker: CursorTracker | None, progress: dict[str, int]) -> Batch | None:
        """Skip rows a checkpoint already committed, drop boundary rows already loaded, transform and check."""
        if progress["skip"]:
            data = batch.to_arrow()
            head, data = data.slice(0, progress["skip"]), data.slice(progress["skip"])
            progress["skip"] -= head.num_rows
            if tracker is not None:
                tracker.observe(tracker.filter(head))
            if data.num_rows == 0:
                return None
            batch = batch.replace(data)
        if tracker is not None:
            data = tracker.filter(batch.to_arrow())
            tracker.observe(data)
            batch = batch.replace(data)
        return self._transform(the_plan, batch)

    def _executor(self) -> Any:
        runtime = self.recipe.runtime
        registration = self.host.registry.get("executor", runtime.executor)
        config = runtime.executor_config
        if config is None and isinstance(registration.config, type):
            config = registration.config()
        executor = registration.build(config)
        if not isinstance(executor, Executor):
            raise EngineError(f"executor '{runtime.executor}' has no run(job) method", executor=runtime.executor)
        return executor

    def _partitions(self, source: Any, pending: State) -> list[Partition]:
        """The source's partitions; one for the whole source when it has none (or a checkpoint needs one order).

        The ``local`` executor gets them only with ``runtime.parallelism`` above 1 (it reads that
        many at once, so their rows interleave); otherwise, and for a merge (whose last row per key
        must be the source's last), it reads the whole source in the source's own order.
        """
        runtime = self.recipe.runtime
        if not isinstance(source, Partitions) or runtime.checkpoint_every:
            return [WHOLE]
        merge = getattr(self.recipe.destination, "write_mode", "append") == "merge"
        if runtime.executor == "local" and (runtime.parallelism <= 1 or merge):
            return [WHOLE]
        return list(source.partitions(pending)) or [WHOLE]

    def _tracker(self, pending: State) -> CursorTracker | None:
        incremental = getattr(self.recipe.source, "incremental", None)
        if incremental is None or incremental.strategy != "cursor" or not incremental.cursor_column:
            return None
        return CursorTracker(pending, incremental.cursor_column, incremental.initial_value, incremental.primary_key)

    def _write(self, destination: Any, batch: Batch, pending: State, mode: str) -> None:
        if not self.began:
            _call(destination, "begin", batch.schema, mode, pending)
            self.began = True
        destination.write_batch(batch, pending)
        faults.point("batch_written")
        self.rows_written += batch.row_count
        self.hook("batch_written", batch=batch, rows=batch.row_count)
        self.emit("progress")

    def _checkpoint(self, destination: Any, start: State, mode: str) -> None:
        """Publish the rows written so far with a state that records how far the source was read."""
        self._check_limits()
        checkpoint = self._checkpoint_state(start, self.rows_read)
        self._still_leased()
        faults.point("before_checkpoint")
        self.ledger.commit(checkpoint, self.ledger.published(final=False, rows=self.rows_written, mode=mode))
        self.began = False
        faults.point("after_checkpoint")
        self._save(checkpoint)
        self.last_checkpoint = checkpoint
        self.emit("committed", f"checkpoint: {self.rows_read:,} source rows loaded")

    def _batches(self, source: Any, pending: State, partition: Partition = WHOLE, stream: Any = None) -> Iterator[Batch]:
        """Batches of a partition (or of a ready ``stream``) from reader threads, re-chunked to ``runtime.batch_size``."""
        size = self.recipe.runtime.batch_size
        offset = 0
        if stream is not None:
            produce = None
        elif partition is WHOLE or partition == WHOLE:
            produce = lambda: source.read_batches(pending)  # noqa: E731
        else:
            produce = lambda: source.read_partition(partition, pending)  # noqa: E731
        batches = stream if produce is None else _read_in_thread(produce, self.recipe.runtime.queue_size)
        for batch in rechunk(batches, size):
            batch.metadata.setdefault("row_offset", offset)
            offset += batch.row_count
            self.rows_read += batch.row_count
            faults.point("batch_read")
            yield batch

    def _transform(self, the_plan: Plan, batch: Batch) -> Batch | None:
        for index, kind, step in the_plan.steps:
            try:
                batch = step.apply(batch)
            except DataLoaderError as exc:
                if isinstance(exc, TransformError) and exc.context.get("step") is not None:
                    raise
                raise TransformError(f"transform.steps.{index} ({kind}): {exc}", step=index, type=kind) from exc
            except Exception as exc:
                raise TransformError(
                    f"transform.steps.{index} ({kind}) failed: {type(exc).__name__}: {exc}", step=index, type=kind
                ) from exc
            batch = self._take_rejects(batch, f"transform.steps.{index} ({kind})")
        if the_plan.checks:
            batch = the_plan.checks.apply(batch, self)
            batch = self._take_rejects(batch, "quality_checks")
        return batch

    def _take_rejects(self, batch: Batch, where: str) -> Batch:
        rejected = batch.take_rejected()
        if rejected is not None and rejected.num_rows:
            self.rows_failed += rejected.num_rows
            self.dead_letters.write(rejected, where, batch.metadata)
            self._check_limits()
        return batch

    def _check_limits(self, *, final: bool = False) -> None:
        """Fail when too many rows were rejected.

        ``max_failed_rows`` is a count, so it fails as soon as it is passed. ``max_failed_ratio`` is
        judged on the whole run: during the run it fails early only once the failed rows exceed the
        ratio of the estimated total (or, without an estimate, never before the end).
        """
        runtime = self.recipe.runtime
        if runtime.max_failed_rows is not None and self.rows_failed > runtime.max_failed_rows:
            raise EngineError(
                f"{self.rows_failed} rows failed, more than runtime.max_failed_rows={runtime.max_failed_rows}; "
                "the run is rolled back (see the dead-letter file for the rows)",
                rows_failed=self.rows_failed,
            )
        ratio = runtime.max_failed_ratio
        if ratio is None or not self.rows_failed:
            return
        if final:
            total = self.rows_read
        elif self.total_estimate:
            total = max(self.total_estimate, self.rows_read)
        else:
            return
        if total and self.rows_failed / total > ratio:
            raise EngineError(
                f"{self.rows_failed:,} of {total:,} rows failed ({self.rows_failed / total:.1%}), more than "
                f"runtime.max_failed_ratio={ratio}; the run is rolled back",
                rows_failed=self.rows_failed,
            )


# -- helpers -----------------------------------------------------------------------------------
def _progress(checkpoints: dict[str, Any]) -> dict[str, Any]:
    """What survives of an interrupted run's checkpoint: how far it got, if it committed any."""
    rows = int(checkpoints.get("rows_done") or 0)
    if not rows:
        return {}
    kept = {"rows_done": rows, "resumed_run_id": checkpoints.get("run_id") or checkpoints.get("resumed_run_id")}
    if checkpoints.get("fingerprint") is not None:
        kept["fingerprint"] = checkpoints["fingerprint"]
    return kept


def _commits_state(destination: Any) -> bool:
    caps = getattr(destination, "capabilities", None)
    declared = isinstance(caps, Capabilities) and caps.commits_state
    return bool(declared or isinstance(destination, CommitsState))


def _fingerprint(source: Any, state: State) -> dict[str, Any] | None:
    if not isinstance(source, Fingerprints):
        return None
    try:
        return source.fingerprint(state)
    except DataLoaderError:
        raise
    except Exception as exc:
        raise ConnectorError(f"source: could not fingerprint what it would read: {type(exc).__name__}: {exc}") from exc


__all__ = [
    "EventHandler",
    "RunEvent",
    "RunResult",
    "RunInfo",
    "Plan",
    "plan",
    "output_schema",
    "check_connections",
    "run_recipe",
    "run_recipe_from_yaml",
    "run_many",
    "preflight",
    "rechunk",
    "new_run_id",
]


def _schema_changes(outcome: Any) -> list[dict[str, Any]]:
    """The schema changes a run applied (or warned about), as ``SchemaChange.to_dict()`` dicts."""
    if outcome is None:
        return []
    return [c.to_dict() for c in outcome.changes if c.action in ("apply", "warn")]


def _mirror_schema(recorder: Any, run: _Run) -> None:
    """After a committed run, copy the schema versions it published to the local mirror."""
    versions = (getattr(run.schema_outcome, "published", None) or {}).get("schema_versions")
    if run.error is not None or not versions or not hasattr(recorder, "mirror_schema"):
        return
    try:
        recorder.mirror_schema(run.recipe.name, versions)
    except Exception as exc:  # the destination's record is authoritative; the mirror is a copy
        log.warning("could not mirror the schema versions of '%s': %s", run.recipe.name, exc)
