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

import datetime as dt
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataloader import faults
from dataloader.batch import Batch
from dataloader.connector import Capabilities, CommitsState, Fingerprints, LocksRecipe, RunContext
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
from dataloader.run.ledger import LeaseHolder, Ledger
from dataloader.state import LeasingBackend, LocalStateBackend, State, StateBackend

log = logging.getLogger("dataloader.engine")

EventHandler = Callable[["RunEvent"], None]


@dataclass
class RunEvent:
    """What a reporter sees: ``run_started``, ``progress``, ``committed``, ``warning``, ``run_finished``."""

    kind: str
    recipe_name: str
    run_id: str
    rows_read: int = 0
    rows_written: int = 0
    total_estimate: int | None = None
    elapsed_s: float = 0.0
    message: str | None = None
    result: RunResult | None = None


@dataclass
class RunResult:
    """The outcome of one run. ``status`` is ``success``, ``partial_success`` (rows went to the
    dead-letter queue) or ``failed``."""

    status: str
    recipe_name: str
    run_id: str
    rows_read: int = 0
    rows_written: int = 0
    rows_failed: int = 0
    duration_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    error: str | None = None
    state_before: dict[str, Any] = field(default_factory=dict)
    state_after: dict[str, Any] = field(default_factory=dict)
    dead_letter_path: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunInfo:
    """Handed to the lifecycle hooks (``run_started``, ``batch_written``, ``run_finished``)."""

    recipe: Recipe
    run_id: str
    started_at: str


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def new_run_id() -> str:
    """Sortable and unique: UTC time plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- the plan ----------------------------------------------------------------------------------
@dataclass
class Plan:
    recipe: Recipe
    source: Any
    destination: Any
    steps: list[tuple[int, str, Any]]
    checks: Any
    host: PluginHost


def plan(recipe: Recipe, host: PluginHost | None = None) -> Plan:
    """Build every plugin object the run needs; no connection is opened yet."""
    from dataloader.quality import build_checks

    host = host or get_host()
    registry = host.registry
    source = registry.get("connector", connector_type(recipe, "source")).build(recipe.source)
    destination = registry.get("connector", connector_type(recipe, "destination")).build(recipe.destination)
    steps = []
    for step in recipe.transform.steps:
        try:
            steps.append((step.index, step.type, registry.get("transform", step.type).build(step.config)))
        except DataLoaderError:
            raise
        except Exception as exc:
            raise TransformError(
                f"transform.steps.{step.index} ({step.type}) could not be set up: {exc}", step=step.index
            ) from exc
    checks = build_checks(recipe, registry)
    return Plan(recipe, source, destination, steps, checks, host)


def output_schema(the_plan: Plan, schema: pa.Schema) -> pa.Schema:
    """The schema the destination will get: the source schema through every step (on no rows)."""
    batch = Batch(pa.RecordBatch.from_pylist([], schema=schema), {"row_offset": 0})
    for index, kind, step in the_plan.steps:
        try:
            batch = step.apply(batch)
        except DataLoaderError as exc:
            raise TransformError(f"transform.steps.{index} ({kind}): {exc}", step=index, type=kind) from exc
    return batch.schema


def check_connections(the_plan: Plan) -> list[str]:
    """Test both connections and that the source's schema fits the destination. Connectors are open."""
    problems: list[str] = []
    for role, connector in (("source", the_plan.source), ("destination", the_plan.destination)):
        tester = getattr(connector, "test_connection", None)
        if callable(tester):
            try:
                tester()
            except DataLoaderError as exc:
                problems.append(f"{role}: {exc}")
    if problems:
        return problems
    get_schema = getattr(the_plan.source, "get_schema", None)
    fits = getattr(the_plan.destination, "check_schema", None)
    if callable(get_schema) and callable(fits):
        try:
            schema = get_schema()
            if schema is not None:
                problems.extend(f"destination: {p}" for p in fits(output_schema(the_plan, schema)) or [])
        except DataLoaderError as exc:
            problems.append(str(exc))
    return problems


def preflight(recipe: Recipe, host: PluginHost | None = None) -> list[str]:
    """What ``dataloader check`` reports: every problem found before a run would touch anything."""
    the_plan = plan(recipe, host)
    run = _Run(recipe, LocalStateBackend(), resume=False, full_refresh=False, on_event=None, host=host)
    the_plan.source.context = run._context("source")
    the_plan.destination.context = run._context("destination")
    problems: list[str] = []
    opened = []
    try:
        for role, connector in (("source", the_plan.source), ("destination", the_plan.destination)):
            try:
                _open(connector, role)
                opened.append(connector)
            except DataLoaderError as exc:
                problems.append(f"{role}: {exc}")
        if not problems:
            problems.extend(check_connections(the_plan))
    finally:
        for connector in opened:
            _close(connector)
    return problems


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

    backend = state_backend if state_backend is not None else LocalStateBackend()
    run = _Run(recipe, backend, resume=resume, full_refresh=full_refresh, on_event=on_event, host=host)
    result = run.execute()
    recorder = default_history() if history is None else history
    if recorder:
        try:
            recorder.record(result)
        except Exception as exc:  # history is a record, never a reason to fail a committed run
            log.warning("could not record run %s in the run history: %s", result.run_id, exc)
    if run.error is not None:
        run.error.context["result"] = result
        raise run.error
    return result


def run_recipe_from_yaml(
    path: str | Path,
    state_backend: StateBackend | None = None,
    *,
    vars: dict[str, Any] | None = None,
    **options: Any,
) -> RunResult:
    """``from_yaml`` then ``run_recipe``."""
    from dataloader.recipe import from_yaml

    return run_recipe(from_yaml(path, vars=vars), state_backend, **options)


def run_many(
    recipes: Sequence[Recipe],
    backend_for: Callable[[Recipe], StateBackend],
    *,
    jobs: int = 1,
    **options: Any,
) -> list[RunResult | DataLoaderError]:
    """Run several recipes, one after another or ``jobs`` at a time; failures are returned, not raised."""

    def one(recipe: Recipe) -> RunResult | DataLoaderError:
        try:
            return run_recipe(recipe, backend_for(recipe), **options)
        except DataLoaderError as exc:
            return exc

    if jobs <= 1 or len(recipes) <= 1:
        return [one(recipe) for recipe in recipes]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dataloader-run") as pool:
        return list(pool.map(one, recipes))


# -- one run -----------------------------------------------------------------------------------
class _Run:
    def __init__(
        self,
        recipe: Recipe,
        backend: StateBackend,
        *,
        resume: bool,
        full_refresh: bool,
        on_event: EventHandler | None,
        host: PluginHost | None,
    ) -> None:
        self.recipe = recipe
        self.backend = backend
        self.resume = resume
        self.full_refresh = full_refresh
        self.on_event = on_event
        self.host = host or get_host()
        self.run_id = new_run_id()
        self.error: DataLoaderError | None = None
        self.started = time.monotonic()
        self.started_at = _now()
        self.rows_read = 0
        self.rows_written = 0
        self.rows_failed = 0
        self.total_estimate: int | None = None
        self.state_before: dict[str, Any] = {}
        self.state_after: dict[str, Any] = {}
        self.dead_letters: Any = None
        self.attempts = 0
        self.holder = LeaseHolder.current(self.run_id)
        self.fingerprint: dict[str, Any] | None = None
        self.lease: Any = None
        self.lease_problem: DataLoaderError | None = None
        self.began = False

    # events and hooks ---------------------------------------------------------------------
    def emit(self, kind: str, message: str | None = None, result: RunResult | None = None) -> None:
        if self.on_event is None:
            return
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
        try:
            self.on_event(event)
        except Exception as exc:  # a reporter must never break a run
            log.debug("event handler failed: %s", exc)

    def hook(self, name: str, **kwargs: Any) -> None:
        try:
            getattr(self.host.pm.hook, name)(**kwargs)
        except Exception as exc:  # observers must never break a run
            log.warning("a %s hook failed: %s", name, exc)

    # the run ------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        info = RunInfo(self.recipe, self.run_id, self.started_at)
        self.hook("run_started", run=info)
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
        self.hook("run_finished", run=info, result=result)
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
                locked = self._lock(destination)
                self._attempt_opened(the_plan)
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
        runtime = self.recipe.runtime
        return RunContext(
            recipe_name=self.recipe.name,
            run_id=self.run_id,
            role=role,
            batch_size=runtime.batch_size,
            parallelism=runtime.parallelism,
            # With checkpoints a resumed run skips rows by count, so sources must read in a stable order.
            extras={"ordered": bool(runtime.checkpoint_every)},
        )

    # moving rows --------------------------------------------------------------------------
    def _move(self, the_plan: Plan, pending: State, start: State, resume_rows: int) -> None:
        from dataloader.quality import DeadLetters

        destination = the_plan.destination
        self.dead_letters = DeadLetters(self.recipe, self.run_id)
        mode = getattr(self.recipe.destination, "write_mode", "append")
        self.began = False
        try:
            problems = check_connections(the_plan)
            if problems:
                raise EngineError("preflight failed, nothing was written: " + "; ".join(problems), problems=problems)
            self.total_estimate = _estimate(the_plan.source, pending)
            if self.total_estimate is not None:
                self.emit("run_started")
            self._load_rows(the_plan, pending, start, resume_rows, mode)
            self._check_limits(final=True)
            if not self.began:
                _call(destination, "begin", None, mode, pending)
                self.began = True
            pending.metadata.update({"last_run_id": self.run_id, "last_run_at": _now(), "rows_written": self.rows_written})
            self.dead_letters.close()
            self._still_leased()
            faults.point("before_commit")
            self.ledger.commit(pending, self.ledger.published(final=True, rows=self.rows_written, mode=mode))
            faults.point("after_commit")
            self.began = False
            self.state_after = pending.to_dict()
            self.emit("committed")
            self._save(pending)
        except BaseException:
            if self.began:
                _abort(destination)
            self.dead_letters.discard()
            raise

    def _load_rows(self, the_plan: Plan, pending: State, start: State, resume_rows: int, mode: str) -> None:
        """Read, filter, transform and write every batch; checkpoint every ``checkpoint_every`` source rows."""
        source, destination = the_plan.source, the_plan.destination
        tracker = self._tracker(pending)
        skip = resume_rows
        every = self.recipe.runtime.checkpoint_every
        read_at_checkpoint = 0
        for batch in self._batches(source, pending):
            if skip:
                # Resuming: these source rows were committed by an earlier checkpoint.
                data = batch.to_arrow()
                head, data = data.slice(0, skip), data.slice(skip)
                skip -= head.num_rows
                if tracker is not None:
                    tracker.observe(tracker.filter(head))
                if data.num_rows == 0:
                    continue
                batch = batch.replace(data)
            if tracker is not None:
                data = tracker.filter(batch.to_arrow())
                tracker.observe(data)
                batch = batch.replace(data)
            batch = self._transform(the_plan, batch)
            if batch is not None and batch.row_count:
                self._write(destination, batch, pending, mode)
            if every and self.began and self.rows_read - read_at_checkpoint >= every:
                self._checkpoint(destination, start, mode)
                read_at_checkpoint = self.rows_read
        if tracker is not None:
            tracker.save_to(pending)

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
        self.hook("batch_written", run=RunInfo(self.recipe, self.run_id, self.started_at), batch=batch, rows=batch.row_count)
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

    def _batches(self, source: Any, pending: State) -> Iterator[Batch]:
        """Batches from the reader thread, re-chunked to ``runtime.batch_size``."""
        size = self.recipe.runtime.batch_size
        offset = 0
        for batch in rechunk(_read_in_thread(source, pending, self.recipe.runtime.queue_size), size):
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
        rejected = batch.metadata.pop("rejected", None)
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


def _call(connector: Any, name: str, *args: Any) -> Any:
    """Call an optional connector member (``begin``, ``commit`` ...) when the connector has it."""
    method = getattr(connector, name, None)
    return method(*args) if callable(method) else None


def _open(connector: Any, role: str) -> None:
    try:
        _call(connector, "open")
    except DataLoaderError:
        raise
    except Exception as exc:
        raise ConnectorError(f"{role} could not be opened: {type(exc).__name__}: {exc}", role=role) from exc


def _close(connector: Any) -> None:
    try:
        _call(connector, "close")
    except Exception as exc:  # closing must not hide the run's own outcome
        log.warning("closing %s failed: %s", type(connector).__name__, exc)


def _abort(connector: Any) -> None:
    try:
        _call(connector, "abort")
    except Exception as exc:
        log.error("abort of %s failed: %s", type(connector).__name__, exc)


def _estimate(source: Any, state: State) -> int | None:
    estimate = getattr(source, "estimate_total_records", None)
    if not callable(estimate):
        return None
    try:
        value = estimate(state)
    except Exception as exc:  # an estimate is a nicety
        log.debug("estimate_total_records failed: %s", exc)
        return None
    return int(value) if value is not None else None


def _read_in_thread(source: Any, state: State, queue_size: int) -> Iterator[Batch]:
    """Run ``source.read_batches`` in a thread; yield its batches through a bounded queue.

    The bound is what keeps memory flat: the reader blocks when the writer falls behind. When the
    consumer stops early (a failed write), the reader is told to stop and its generator is closed.
    """
    channel: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        iterator = None
        try:
            iterator = iter(source.read_batches(state))
            for batch in iterator:
                if not isinstance(batch, Batch):
                    batch = Batch.from_arrow(batch)
                if not put(batch):
                    break
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    pass

    thread = threading.Thread(target=reader, name="dataloader-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                exc = item.exc
                if isinstance(exc, DataLoaderError):
                    raise exc
                raise ConnectorError(f"reading the source failed: {type(exc).__name__}: {exc}") from exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


def rechunk(batches: Iterator[Batch], size: int) -> Iterator[Batch]:
    """Re-cut batches to ``size`` rows: big ones are sliced, small ones are joined, all without copying.

    Batches join only while they share a schema and metadata (rows of one file stay together so a
    row number can name its file).
    """
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    pending_meta: dict[str, Any] = {}

    def flush() -> Iterator[Batch]:
        nonlocal pending, pending_rows
        if not pending:
            return
        # Several pieces stay pieces (no copy): Batch joins them only if someone asks for one record batch.
        joined = pending[0] if len(pending) == 1 else pa.Table.from_batches(pending)
        pending, pending_rows = [], 0
        yield Batch(joined, dict(pending_meta))

    for batch in batches:
        if batch.row_count == 0:
            continue
        if pending and (batch.schema != pending[0].schema or _identity(batch.metadata) != _identity(pending_meta)):
            yield from flush()
        for data in batch.to_arrow_chunks():
            if not pending:
                pending_meta = dict(batch.metadata)
                pending_meta.pop("row_offset", None)
            start = 0
            while start < data.num_rows:
                take = min(size - pending_rows, data.num_rows - start)
                pending.append(data.slice(start, take))
                pending_rows += take
                start += take
                if pending_rows >= size:
                    yield from flush()
    yield from flush()


def _identity(metadata: dict[str, Any]) -> Any:
    return metadata.get("file")


__all__ = ["RunEvent", "RunResult", "RunInfo", "Plan", "plan", "run_recipe", "run_recipe_from_yaml", "run_many", "preflight", "rechunk", "new_run_id"]
