"""The transform step protocol."""

from __future__ import annotations

from typing import Any

from dataloader.batch import Batch


class Transform:
    """A step between source and destination.

    Built once per run as ``factory(config)``; ``apply`` is called for every batch and returns the
    transformed batch. Work column-wise with ``pyarrow.compute``; never loop over rows.
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    def apply(self, batch: Batch) -> Batch:
        raise TypeError(f"{type(self).__name__} must define apply(batch)")
