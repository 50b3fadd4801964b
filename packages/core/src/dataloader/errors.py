"""Every error dataloader raises on purpose.

The hierarchy::

    DataLoaderError                 base; carries a structured ``context`` dict
    ├── RecipeError                 the recipe file, its parents, templates or validation
    ├── PluginError                 a plugin failed to load, clashed, or broke the contract
    ├── ConnectorError              a source or destination failed
    │   └── TransientConnectorError a failure worth retrying (connection reset, timeout, throttling)
    ├── TransformError              a transform step failed on the data
    ├── StateError                  state could not be read or written
    │   ├── LeaseHeldError          another run of the recipe holds its lease or lock
    │   └── LeaseLostError          this run's lease was taken over while it ran
    └── EngineError                 the run itself could not proceed
        └── RunInterrupted          stopped by Ctrl-C (exit 130) or SIGTERM (exit 143)

Driver exceptions (psycopg2, duckdb, botocore, paramiko ...) are translated once, at the
connector's boundary, with ``raise ConnectorError(...) from exc``. Retry logic only ever looks at
``DataLoaderError.transient``; it never pattern-matches driver exceptions.

Messages say what was tried and how to fix it. ``context`` holds the same facts as data
(``file``, ``key``, ``row``, ``column``, ``connector`` ...) so a caller can act on them.
"""

from __future__ import annotations

from typing import Any


class DataLoaderError(Exception):
    """Base of all dataloader errors."""

    #: Whether retrying the same operation may succeed.
    transient: bool = False

    def __init__(self, message: str, *, context: dict[str, Any] | None = None, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {**(context or {}), **facts}

    def __str__(self) -> str:
        return self.message


class RecipeError(DataLoaderError):
    """The recipe (or one of its parents) is missing, malformed, or invalid."""


class PluginError(DataLoaderError):
    """A plugin failed to import, registered a clashing name, or broke the plugin contract."""


class ConnectorError(DataLoaderError):
    """A connector failed talking to its system."""


class TransientConnectorError(ConnectorError):
    """A connector failure that may succeed if retried (dropped connection, timeout, throttling)."""

    transient = True


class TransformError(DataLoaderError):
    """A transform step failed on the data it was given."""


class StateError(DataLoaderError):
    """State could not be loaded or saved."""


class LeaseHeldError(StateError):
    """Another run of the same recipe is running: this one must not start."""

    def __init__(self, recipe_name: str, holder: Any = None, where: str = "", hint: str | None = None) -> None:
        who = holder.describe() if holder is not None else "another run"
        place = f", lease held in {where}" if where else ""
        advice = hint or (
            "wait for it to finish; if that process is gone, its lease is taken over automatically "
            "once it expires (or remove the lease, then run again)"
        )
        super().__init__(
            f"recipe '{recipe_name}' is already running ({who}){place}; {advice}",
            recipe=recipe_name,
            holder=holder.to_dict() if holder is not None else None,
            where=where,
        )


class LeaseLostError(StateError):
    """This run's lease expired and another run took it: this run must not commit."""


class EngineError(DataLoaderError):
    """The run could not proceed (bad plan, failed commit, interrupted run)."""


class RunInterrupted(EngineError):
    """The run was stopped by a signal; it was rolled back and is recorded as ``interrupted``."""

    #: The exit code the command line ends with: 128 + the signal's number.
    exit_code: int = 130

    @classmethod
    def from_signal(cls, exc: BaseException, recipe_name: str) -> RunInterrupted:
        name = getattr(exc, "signal_name", "SIGINT")
        error = cls(
            f"run of '{recipe_name}' interrupted by {name}; what it wrote was rolled back "
            "(checkpoints already committed stay, and the next run resumes after them)",
            recipe=recipe_name,
            signal=name,
        )
        error.exit_code = 143 if name == "SIGTERM" else 130
        return error


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM, so a run unwinds like on Ctrl-C."""

    signal_name = "SIGTERM"


__all__ = [
    "DataLoaderError",
    "RecipeError",
    "PluginError",
    "ConnectorError",
    "TransientConnectorError",
    "TransformError",
    "StateError",
    "LeaseHeldError",
    "LeaseLostError",
    "EngineError",
    "RunInterrupted",
    "Terminated",
]
