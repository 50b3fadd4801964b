"""Run a recipe's partitions on a Dask distributed cluster (``runtime.executor: dask``).

The package imports nothing heavy: the entry point (``dataloader_dask.plugin``) must stay cheap,
and ``distributed`` is imported only when a run connects to a cluster.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DaskExecutor", "DaskExecutorConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dataloader_dask import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'dataloader_dask' has no attribute {name!r}")
