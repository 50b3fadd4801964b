"""Built-in transform steps."""

from dataloader.transforms.base import Transform

__all__ = ["Transform"]
