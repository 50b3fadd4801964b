"""What a connector is, and what it says it can do.

A connector implements ``read_batches`` (a source), ``write_batch`` (a destination), or both. It
declares what it can do in one :class:`Capabilities` object; the core checks that object (at
``validate`` time and in the contract test kit) instead of catching ``NotImplementedError``.

Lifecycle the engine drives, for a destination::

    connector.context = RunContext(...)     # set by the engine before open()
    connector.open()
    connector.begin(schema, mode, state)    # schema is None when the source produced no rows
    connector.write_batch(batch, state)     # any number of times
    connector.commit(state)                 # rows become visible to readers, atomically
    # or, on any failure:  connector.abort()   -> destination exactly as before the run
    connector.close()

and for a source::

    connector.open()
    for batch in connector.read_batches(state): ...
    connector.close()

``state`` passed to ``read_batches`` is the run's pending copy of the committed state: a source
may record its own marks in it (``state.watermarks``), and they are saved only after the
destination commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from dataloader.batch import Batch
    from dataloader.config import ConnectorConfig
    from dataloader.run.ledger import LeaseHolder
    from dataloader.state import State

#: Families of Arrow types a connector may claim to round-trip; the contract test kit tests each
#: claimed family and skips the rest.
TYPE_FAMILIES: tuple[str, ...] = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "float32",
    "float64",
    "decimal",
    "string",
    "binary",
    "date",
    "time",
    "timestamp",
    "timestamp_tz",
    "list",
    "json",
)


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, as data."""

    read: bool = False
    write: bool = False
    write_modes: frozenset[str] = frozenset()
    incremental_strategies: frozenset[str] = frozenset()
    transactional: bool = False
    #: The destination stores the run's commit record inside its own commit (``CommitsState``);
    #: checkpointing and resume need it.
    commits_state: bool = False
    #: The destination can hold a per-recipe lock for the whole run (``LocksRecipe``).
    locks: bool = False
    types: frozenset[str] = frozenset()
    #: Whether a written column keeps its exact Arrow type when read back (False for CSV, say).
    preserves_types: bool = True
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def committing(
        cls,
        *,
        write_modes: tuple[str, ...] = ("append", "overwrite", "merge"),
        incremental: tuple[str, ...] = ("cursor",),
        without_types: tuple[str, ...] = (),
        **more: Any,
    ) -> Capabilities:
        """A connector that reads, writes and commits the run's record with its rows (a database, a dataset).

        :param write_modes: the write modes it supports.
        :param incremental: its incremental strategies.
        :param without_types: the type families (:data:`TYPE_FAMILIES`) it does not claim.
        :param more: any other field (``locks``, ``preserves_types``, ``notes``).
        """
        return cls(
            read=True,
            write=True,
            write_modes=frozenset(write_modes),
            incremental_strategies=frozenset(incremental),
            transactional=True,
            commits_state=True,
            types=frozenset(TYPE_FAMILIES) - set(without_types),
            **more,
        )

    @property
    def incremental(self) -> bool:
        return bool(self.incremental_strategies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "write": self.write,
            "write_modes": sorted(self.write_modes),
            "incremental": sorted(self.incremental_strategies),
            "transactional": self.transactional,
            "commits_state": self.commits_state,
            "locks": self.locks,
            "types": sorted(self.types),
        }


@dataclass
class RunContext:
    """Facts about the run that a connector may use; set by the engine as ``connector.context``."""

    recipe_name: str = "adhoc"
    run_id: str = "adhoc"
    role: str = "source"  # "source" or "destination"
    batch_size: int = 10_000
    parallelism: int = 1
    extras: dict[str, Any] = field(default_factory=dict)
    #: The plugin registry this run resolved its plugins from (``run_recipe(..., host=...)``); a
    #: connector that looks up other plugins (a file format, say) uses it, not the process-wide one.
    registry: Any = None


@runtime_checkable
class Connector(Protocol):
    """The minimal protocol; see :class:`BaseConnector` for the optional members."""

    def read_batches(self, state: State) -> Iterable[Batch]: ...

    def write_batch(self, batch: Batch, state: State) -> None: ...


# -- the optional members the engine relies on, each a typed protocol --------------------------
@runtime_checkable
class Transactional(Protocol):
    """A destination whose writes are transactions.

    The engine may call ``begin``/``commit`` several times in one run (once per checkpoint); each
    commit is one transaction, and names it creates (files, parts) stay unique across them. A
    destination that also ``CommitsState`` writes ``CommitRecord.for_commit(context.recipe_name,
    context.run_id, state, context.extras.get("published"))`` inside each commit.
    """

    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None: ...

    def commit(self, state: State) -> None: ...

    def abort(self) -> None: ...


@runtime_checkable
class CommitsState(Protocol):
    """A destination that stores the commit record inside its own commit.

    ``load_committed_state`` is called after ``open()`` and returns what is *committed*
    (``CommitRecord.to_dict()``: ``recipe_name``, ``run_id``, ``state``, ``published``,
    ``committed_at``), or None when the recipe never committed here.
    """

    def load_committed_state(self, recipe_name: str) -> dict[str, Any] | None: ...


@runtime_checkable
class LocksRecipe(Protocol):
    """A destination that can hold a per-recipe lock for a whole run (an advisory lock, a lock file).

    ``acquire_lock`` never waits: it raises :class:`~dataloader.errors.LeaseHeldError` naming the
    other holder when one is live, and takes over the lock of a holder that is gone.
    """

    def acquire_lock(self, recipe_name: str, holder: LeaseHolder) -> None: ...

    def release_lock(self, recipe_name: str) -> None: ...


@runtime_checkable
class Fingerprints(Protocol):
    """A source that can say whether what it would read has changed (a resumed run compares)."""

    def fingerprint(self, state: State) -> dict[str, Any]: ...


@runtime_checkable
class ChecksSchema(Protocol):
    """A destination that can say, before anything is written, whether a schema fits it."""

    def check_schema(self, schema: pa.Schema) -> list[str]: ...


@runtime_checkable
class Estimates(Protocol):
    """A source that can estimate how many rows it will read (for progress)."""

    def estimate_total_records(self, state: State) -> int | None: ...


@dataclass(frozen=True)
class Partition:
    """A small, serialisable description of one part of a source's read (a key range, a file)."""

    name: str
    spec: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Partitions(Protocol):
    """A source that can split its read into partitions; an executor decides how to run them."""

    def partitions(self, state: State) -> list[Partition]: ...

    def read_partition(self, partition: Partition, state: State) -> Iterable[Batch]: ...



class BaseConnector:
    """A convenient base: stores the config, supplies no-op lifecycle methods.

    Subclasses set ``capabilities`` and override what they support.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.context = RunContext()

    # lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Acquire connections. Called once before any read or write."""

    def close(self) -> None:
        """Release connections. Always called, also after a failure."""

    def __enter__(self) -> BaseConnector:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # destination transaction -----------------------------------------------------------
    def begin(self, schema: pa.Schema | None, mode: str, state: State) -> None:
        """Start the run's write; nothing written is visible to readers before ``commit``."""

    def commit(self, state: State) -> None:
        """Publish everything written since ``begin`` atomically."""

    def abort(self) -> None:
        """Discard everything written since ``begin``; the destination is as it was."""

    # optional information --------------------------------------------------------------
    def test_connection(self) -> None:
        """Raise ``ConnectorError`` with a reason a person can act on if the system is unreachable."""

    def estimate_total_records(self, state: State) -> int | None:
        return None

    def get_schema(self) -> pa.Schema | None:
        return None


__all__ = [
    "Capabilities",
    "Connector",
    "BaseConnector",
    "RunContext",
    "TYPE_FAMILIES",
    "Transactional",
    "CommitsState",
    "LocksRecipe",
    "Fingerprints",
    "ChecksSchema",
    "Estimates",
    "Partition",
    "Partitions",
]
