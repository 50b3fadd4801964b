"""Modules imported on first use, to keep ``dataloader run`` quick to start.

``pyarrow.compute`` alone costs about 50 ms to import, and a plain load (no transforms, no quality
checks, no cursor) never calls it.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands in for a module and imports it when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)  # later lookups no longer come through here
        return getattr(module, attribute)


#: ``pyarrow.compute``, imported when a function of it is first used.
compute: Any = LazyModule("pyarrow.compute")
