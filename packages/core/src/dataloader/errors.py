"""Every error dataloader raises on purpose.

The hierarchy::

    DataLoaderError                 base; carries a structured ``context`` dict
    ├── RecipeError                 the recipe file, its parents, templates or validation
    ├── PluginError                 a plugin failed to load, clashed, or broke the contract
    ├── ConnectorError              a source or destination failed
    │   └── TransientConnectorError a failure worth retrying (connection reset, timeout, throttling)
    ├── TransformError              a transform step failed on the data
    ├── StateError                  state could not be read or written
    └── EngineError                 the run itself could not proceed

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


class EngineError(DataLoaderError):
    """The run could not proceed (bad plan, failed commit, interrupted run)."""


__all__ = [
    "DataLoaderError",
    "RecipeError",
    "PluginError",
    "ConnectorError",
    "TransientConnectorError",
    "TransformError",
    "StateError",
    "EngineError",
]
