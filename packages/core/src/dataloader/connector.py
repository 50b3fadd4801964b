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
    types: frozenset[str] = frozenset()
    #: Whether a written column keeps its exact Arrow type when read back (False for CSV, say).
    preserves_types: bool = True
    notes: tuple[str, ...] = field(default=())

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


@runtime_checkable
class Connector(Protocol):
    """The minimal protocol; see :class:`BaseConnector` for the optional members."""

    def read_batches(self, state: State) -> Iterable[Batch]: ...

    def write_batch(self, batch: Batch, state: State) -> None: ...


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


__all__ = ["Capabilities", "Connector", "BaseConnector", "RunContext", "TYPE_FAMILIES"]
