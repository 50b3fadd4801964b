"""The plugin module named by the ``dataloader`` entry point."""

from dataloader.hookspecs import hookimpl


@hookimpl
def register_executors(register):  # type: ignore[no-untyped-def]
    from dataloader_dask.executor import DaskExecutor, DaskExecutorConfig

    register("dask", DaskExecutor, config=DaskExecutorConfig)
