"""The file format protocol used by file-based connectors (``register_formats``).

A format turns a binary stream into Arrow record batches and back, streaming: neither direction
may hold a whole file in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class FormatWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None:
        """Flush and finish the file (footer, compression trailer); does not close the stream."""


@runtime_checkable
class Format(Protocol):
    """Built as ``factory(options)`` where ``options`` is the format's config model instance."""

    #: File name suffixes this format claims, e.g. ``(".csv", ".tsv")``.
    extensions: tuple[str, ...]

    def read(self, stream: IO[bytes], *, path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Yield record batches of at most about ``batch_size`` rows from ``stream``.

        Errors name ``path`` and, where known, the row number.
        """
        ...

    def writer(self, stream: IO[bytes], schema: pa.Schema) -> FormatWriter: ...


def describe(fmt: Any) -> str:
    return ", ".join(getattr(fmt, "extensions", ()) or ())


__all__ = ["Format", "FormatWriter"]
