"""The plan of a run: every plugin object built from the recipe, preflight, and the run's context.

Nothing here moves rows. ``plan`` builds the source, destination, transform steps and quality
checks through the host's registry (no I/O); ``preflight`` opens the connectors and reports every
problem before anything is touched; ``resolve_state_backend`` picks the recipe's state backend.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dataloader.batch import Batch
from dataloader.connector import RunContext
from dataloader.errors import ConnectorError, DataLoaderError, TransformError
from dataloader.plugins import PluginHost, get_host
from dataloader.recipe import Recipe
from dataloader.recipe.models import connector_type
from dataloader.state import LocalStateBackend, State

log = logging.getLogger("dataloader.engine")

#: The local state backend's folder when nothing else says.
DEFAULT_STATE_DIR = ".state"


@dataclass
class Plan:
    recipe: Recipe
    source: Any
    destination: Any
    steps: list[tuple[int, str, Any]]
    checks: Any
    host: PluginHost
    #: The recipe's schema contract step (the last of ``steps``), when it has a ``schema:`` section.
    contract: Any = None
    #: What the schema gate found at preflight (``dataloader.schema.drift.Outcome``).
    schema_outcome: Any = None

    @property
    def published(self) -> dict[str, Any]:
        """What the run's commits publish besides the ledger's own keys (the schema versions)."""
        return dict(self.schema_outcome.published) if self.schema_outcome is not None else {}


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
    contract = None
    if recipe.schema_ is not None:
        from dataloader.schema.contract import ContractStep

        contract = ContractStep(recipe.schema_)
        steps.append((len(steps), "schema", contract))
    return Plan(recipe, source, destination, steps, checks, host, contract)


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
    if callable(get_schema) and (callable(fits) or the_plan.recipe.schema_ is not None):
        try:
            schema = get_schema()
            if schema is not None:
                incoming = output_schema(the_plan, schema)
                if the_plan.recipe.schema_ is not None:
                    from dataloader.schema.drift import gate

                    the_plan.schema_outcome = gate(the_plan.recipe, the_plan.destination, incoming, the_plan.contract)
                    for line in the_plan.schema_outcome.report():
                        log.warning("schema: %s", line)
                if callable(fits):
                    problems.extend(f"destination: {p}" for p in fits(incoming) or [])
        except DataLoaderError as exc:
            problems.append(str(exc))
    return problems


def preflight(recipe: Recipe, host: PluginHost | None = None) -> list[str]:
    """What ``dataloader check`` reports: every problem found before a run would touch anything."""
    the_plan = plan(recipe, host)
    for role in ("source", "destination"):
        getattr(the_plan, role).context = context_for(recipe, "preflight", role, the_plan.host.registry)
    problems: list[str] = []
    opened = []
    try:
        for role, connector in (("source", the_plan.source), ("destination", the_plan.destination)):
            try:
                open_connector(connector, role)
                opened.append(connector)
            except DataLoaderError as exc:
                problems.append(f"{role}: {exc}")
        if not problems:
            problems.extend(check_connections(the_plan))
    finally:
        for connector in opened:
            close_connector(connector)
    return problems


def context_for(recipe: Recipe, run_id: str, role: str, registry: Any = None) -> RunContext:
    """The facts about a run a connector gets as ``connector.context``."""
    runtime = recipe.runtime
    return RunContext(
        recipe_name=recipe.name,
        run_id=run_id,
        role=role,
        batch_size=runtime.batch_size,
        parallelism=runtime.parallelism,
        # With checkpoints a resumed run skips rows by count, so sources must read in a stable order.
        extras={"ordered": bool(runtime.checkpoint_every)},
        registry=registry,
    )


def resolve_state_backend(recipe: Recipe, state_dir: str | None = None, host: PluginHost | None = None) -> Any:
    """The state backend a recipe's runs use.

    A recipe's ``state.backend`` other than ``local`` is built from its plugin (through ``host``).
    For the local backend the folder is, first found: ``state_dir``, the recipe's
    ``state.state_dir``, ``DATALOADER_STATE_DIR``, ``.state``.
    """
    section = recipe.state
    if section is not None and section.backend != "local":
        registry = (host or get_host()).registry
        return registry.get("state_backend", section.backend).build(section.config)
    directory = state_dir
    if directory is None and section is not None:
        config = section.config
        directory = getattr(config, "state_dir", None) if config is not None else None
        directory = directory or section.options.get("state_dir")
    if directory is None:
        directory = os.environ.get("DATALOADER_STATE_DIR") or DEFAULT_STATE_DIR
    return LocalStateBackend(directory)


# -- calling a connector's optional members ------------------------------------------------
def call_optional(connector: Any, name: str, *args: Any) -> Any:
    """Call an optional connector member (``begin``, ``commit`` ...) when the connector has it."""
    method = getattr(connector, name, None)
    return method(*args) if callable(method) else None


def open_connector(connector: Any, role: str) -> None:
    try:
        call_optional(connector, "open")
    except DataLoaderError:
        raise
    except Exception as exc:
        raise ConnectorError(f"{role} could not be opened: {type(exc).__name__}: {exc}", role=role) from exc


def close_connector(connector: Any) -> None:
    try:
        call_optional(connector, "close")
    except Exception as exc:  # closing must not hide the run's own outcome
        log.warning("closing %s failed: %s", type(connector).__name__, exc)


def abort_connector(connector: Any) -> None:
    try:
        call_optional(connector, "abort")
    except Exception as exc:
        log.error("abort of %s failed: %s", type(connector).__name__, exc)


def estimate(source: Any, state: State) -> int | None:
    estimate = getattr(source, "estimate_total_records", None)
    if not callable(estimate):
        return None
    try:
        value = estimate(state)
    except Exception as exc:  # an estimate is a nicety
        log.debug("estimate_total_records failed: %s", exc)
        return None
    return int(value) if value is not None else None


__all__ = [
    "Plan",
    "plan",
    "output_schema",
    "check_connections",
    "preflight",
    "context_for",
    "resolve_state_backend",
    "call_optional",
    "open_connector",
    "close_connector",
    "abort_connector",
    "estimate",
]
