"""Run a recipe's partitions on a Dask distributed cluster (``runtime.executor: dask``)."""

from dataloader_dask.executor import DaskExecutor, DaskExecutorConfig

__all__ = ["DaskExecutor", "DaskExecutorConfig"]
