"""dataloader: declarative extract-load on Arrow.

The names below are the public Python API. Heavy modules (the recipe layer, the engine) load on
first use so that ``import dataloader`` (and every plugin's entry-point module) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dataloader.batch import Batch, DictBatch
from dataloader.errors import (
    ConnectorError,
    DataLoaderError,
    EngineError,
    PluginError,
    RecipeError,
    StateError,
    TransformError,
    TransientConnectorError,
)
from dataloader.hookspecs import hookimpl
from dataloader.state import LocalStateBackend, State, StateBackend

__version__ = "0.1.0"

_LAZY = {
    "Recipe": "dataloader.recipe",
    "from_yaml": "dataloader.recipe",
    "run_recipe": "dataloader.engine",
    "RunResult": "dataloader.engine",
    "run_recipe_from_yaml": "dataloader.engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dataloader' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Batch",
    "DictBatch",
    "State",
    "StateBackend",
    "LocalStateBackend",
    "hookimpl",
    "Recipe",
    "from_yaml",
    "run_recipe",
    "run_recipe_from_yaml",
    "RunResult",
    "DataLoaderError",
    "RecipeError",
    "PluginError",
    "ConnectorError",
    "TransientConnectorError",
    "TransformError",
    "StateError",
    "EngineError",
    "__version__",
]
