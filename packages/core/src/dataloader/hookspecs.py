"""The hooks a dataloader plugin implements.

A plugin is a module (or object) with functions decorated by ``dataloader.hookimpl`` whose names
match the specs below. Publish it as a wheel with an entry point in the group ``dataloader``::

    [project.entry-points.dataloader]
    myconnector = "dataloader_myconnector.plugin"

and ``dataloader list-connectors`` shows it; recipes can use what it registers by name.

The ``register_*`` hooks each receive a ``register`` callable::

    register(name: str, factory: Callable[[ConfigModel], object], *, config: type[BaseModel])

The core validates the recipe's section with ``config`` (a pydantic model; unknown keys are
errors) and calls ``factory(config_instance)`` to build the object. Two plugins registering the
same name in one kind is an error naming both distributions. Keep the plugin module cheap to
import: import heavy drivers inside the factory, not at module top.

Lifecycle hooks (``run_started``, ``batch_written``, ``run_finished``) let a plugin observe runs to
export metrics or send alerts. They must not raise; an exception there is logged and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from dataloader.batch import Batch
    from dataloader.run.events import RunEvent, RunInfo, RunResult

PROJECT_NAME = "dataloader"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callable each ``register_*`` hook receives."""

    def __call__(self, name: str, factory: Callable[[Any], Any], *, config: type[BaseModel] | None = None) -> None:
        """Register ``factory`` under ``name`` in this hook's kind.

        :param name: what recipes (and ``list-*`` commands) call it: lower case, digits, ``_``.
        :param factory: called once per use as ``factory(config_instance)``; a class usually.
        :param config: the pydantic model that validates the recipe's section (unknown keys are
            errors naming the key); ``None`` for a plugin without options.
        :raises PluginError: when another distribution already registered ``name`` in this kind.
        """


@hookspec
def register_connectors(register: Register) -> None:
    """Register connector classes.

    ``register("duckdb", DuckDBConnector, config=DuckDBConfig)``. ``DuckDBConfig`` subclasses
    ``dataloader.config.ConnectorConfig``; the connector subclasses
    ``dataloader.connector.BaseConnector`` (or satisfies the ``Connector`` protocol) and declares
    ``capabilities``. The same connector serves as source and destination when it can do both.

    :param register: call it once per connector (:class:`Register`).
    """


@hookspec
def register_transforms(register: Register) -> None:
    """Register transform steps.

    ``register("rename_columns", RenameColumns, config=RenameColumnsConfig)``. A transform is
    built once per run with its config and called as ``transform.apply(batch) -> Batch`` for each
    batch; it should use ``pyarrow.compute`` rather than loop over rows, and rejects rows with
    ``Batch.reject``. ``dataloader.testing.transforms.TransformContractSuite`` tests it.

    :param register: call it once per transform type (:class:`Register`).
    """


@hookspec
def register_formats(register: Register) -> None:
    """Register file formats for file-based connectors.

    ``register("csv", CsvFormat, config=CsvOptions)``. See ``dataloader.formats.Format`` for what a
    format object must provide (a streaming reader and a streaming writer over binary files);
    ``dataloader.testing.formats.FormatContractSuite`` tests it.

    :param register: call it once per format name (:class:`Register`).
    """


@hookspec
def register_state_backends(register: Register) -> None:
    """Register places to keep state.

    ``register("local", LocalStateBackend, config=LocalStateConfig)``. A backend implements
    ``dataloader.state.StateBackend``: ``load(recipe_name) -> dict`` and ``save(recipe_name, dict)``,
    and ``save`` must be atomic and refuse (``StateError``) to overwrite a state saved by another
    instance since this one loaded it. It should hold the per-recipe lease
    (``dataloader.state.LeasingBackend``) and may offer ``delete(name)`` and ``lease_holder(name)``
    for the CLI. ``dataloader.testing.state.StateBackendContractSuite`` tests all of it.

    :param register: call it once per backend name (:class:`Register`).
    """


@hookspec
def register_quality_checks(register: Register) -> None:
    """Register data quality checks usable in a recipe's ``quality_checks`` list.

    ``register("regex", RegexCheck, config=RegexCheckConfig)``. A check is called as
    ``check.evaluate(record_batch) -> pyarrow.BooleanArray`` (True where the row passes).

    :param register: call it once per check name (:class:`Register`).
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register executors: what runs a recipe's pipeline (read, transform, check) for the engine.

    ``register("dask", DaskExecutor, config=DaskExecutorConfig)``. The recipe selects one with
    ``runtime.executor``; the other keys of its ``runtime`` section that the core does not know are
    validated by the executor's ``config`` model. The built-in ``local`` executor runs everything in
    this process. An executor implements ``dataloader.run.executors.Executor``:
    ``run(job: Job) -> None``, where the job hands out the source's partitions, turns a partition
    into ready batches (``job.process(partition)``, safe to call on another machine from the
    recipe alone) and writes batches through the one commit protocol (``job.write(batch)``, on
    the driver). A remote executor sends ``job.task(partition, staging)`` to a worker, which runs
    ``dataloader.run.remote.process_partition`` (rows staged as Parquet under ``staging``), and
    hands each finished partition's result to ``job.publish(result, staging)`` on the driver;
    ``job.after_commit`` callbacks run once the run committed. Only executors other than
    ``local`` receive the source's partitions.

    :param register: call it once per executor name (:class:`Register`).
    """


@hookspec
def run_started(run: RunInfo) -> None:
    """Called when a run starts, before any connection is opened.

    :param run: the recipe, the run's id and when it started (:class:`dataloader.run.events.RunInfo`).
    """


@hookspec
def batch_written(run: RunInfo, batch: Batch, rows: int) -> None:
    """Called after each batch is handed to the destination (written, not yet committed).

    :param run: the run (:class:`dataloader.run.events.RunInfo`).
    :param batch: the batch as the destination received it (after transforms and checks).
    :param rows: how many rows of it were written.
    """


@hookspec
def run_event(run: RunInfo, event: RunEvent) -> None:
    """Called for every moment of a run a person watches; the console, plain and JSON reporters of
    ``dataloader run`` are observers of this hook, and so is ``run_recipe(..., on_event=...)``.

    ``event.kind`` is ``run_started``, ``progress`` (after each batch written), ``committed``
    (the destination committed, or a checkpoint did), ``warning``, ``info`` (e.g. an executor's
    note) or ``run_finished`` (with ``event.result``). Runs of ``dataloader run --jobs N`` go on at
    once, so an observer of several runs tells them apart by ``run.run_id``. Never raises into the
    run: a failing observer is logged and skipped.

    :param run: the run (:class:`dataloader.run.events.RunInfo`).
    :param event: what happened (:class:`dataloader.run.events.RunEvent`): rows read and written so
        far, the source's estimate of its total, seconds elapsed, a message.
    """


@hookspec
def run_finished(run: RunInfo, result: RunResult) -> None:
    """Called when a run ends, committed or not; never raises into the run.

    :param run: the run (:class:`dataloader.run.events.RunInfo`).
    :param result: its outcome (:class:`dataloader.run.events.RunResult`): status, counts, error.
    """


__all__ = ["hookspec", "hookimpl", "PROJECT_NAME", "Register"]
