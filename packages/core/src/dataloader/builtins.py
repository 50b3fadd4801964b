"""The core's own plugin: built-in transforms, quality checks, the local state backend and executor.

Registered through the same hooks a third-party plugin uses.
"""

from __future__ import annotations

from dataloader.hookspecs import hookimpl
from dataloader.state import LocalStateBackend, LocalStateConfig


@hookimpl
def register_transforms(register):  # type: ignore[no-untyped-def]
    from dataloader.transforms import builtin

    for name, factory, config in builtin.BUILTIN_TRANSFORMS:
        register(name, factory, config=config)


@hookimpl
def register_state_backends(register):  # type: ignore[no-untyped-def]
    register("local", LocalStateBackend, config=LocalStateConfig)


@hookimpl
def register_quality_checks(register):  # type: ignore[no-untyped-def]
    from dataloader.quality import BUILTIN_CHECKS

    for name, factory, config in BUILTIN_CHECKS:
        register(name, factory, config=config)


@hookimpl
def register_executors(register):  # type: ignore[no-untyped-def]
    from dataloader.run.executors import LocalExecutor, LocalExecutorConfig

    register("local", LocalExecutor, config=LocalExecutorConfig)
