"""Parquet through ``ParquetFile.iter_batches`` and ``ParquetWriter``.

Parquet compresses column chunks itself (``compression``), so the connector never wraps these
files in gzip/zstd. The writer gathers batches into row groups of ``row_group_size`` rows: one
row group per small batch would make files slow to read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Literal

import pyarrow as pa
from dataloader.config import ConfigModel
from dataloader.errors import ConnectorError
from pydantic import Field


class ParquetOptions(ConfigModel):
    """Options of the ``parquet`` format."""

    #: The codec of the column chunks (inside the file).
    compression: Literal["snappy", "zstd", "gzip", "brotli", "lz4", "none"] = "snappy"
    row_group_size: int = Field(default=128_000, ge=1)
    #: Only these columns are read (default: all).
    columns: list[str] | None = None


class ParquetFormat:
    """The ``parquet`` format."""

    extensions = (".parquet", ".pq")
    compressible = False
    file_extension = ".parquet"
    needs_seekable = True
    #: A Parquet file stores its column types: files of a set that disagree beyond the lattice are refused.
    exact_types = True

    def __init__(self, options: ParquetOptions | None = None) -> None:
        self.options = options or ParquetOptions()

    def read(self, stream: IO[bytes], *, path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(stream)
            yield from parquet.iter_batches(batch_size=batch_size, columns=self.options.columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ConnectorError(f"cannot read Parquet file {path}: {_diagnose(stream, exc)}", file=path) from exc

    def read_schema(self, stream: IO[bytes], *, path: str) -> pa.Schema:
        """The columns ``read`` gives, from the footer alone (no row group is read)."""
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(stream).schema_arrow
        if self.options.columns is None:
            return schema
        return pa.schema([schema.field(name) for name in self.options.columns if name in schema.names])

    def writer(self, stream: IO[bytes], schema: pa.Schema) -> ParquetBatchWriter:
        return ParquetBatchWriter(stream, schema, self.options)


class ParquetBatchWriter:
    def __init__(self, stream: IO[bytes], schema: pa.Schema, options: ParquetOptions) -> None:
        import pyarrow.parquet as pq

        codec = None if options.compression == "none" else options.compression
        try:
            self._writer = pq.ParquetWriter(stream, schema, compression=codec)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConnectorError(f"cannot write these columns as Parquet: {exc}") from exc
        self._schema = schema
        self._group_rows = options.row_group_size
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self._group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=self._group_rows)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _diagnose(stream: IO[bytes], exc: BaseException) -> str:
    """What is wrong with a file pyarrow cannot open, told by its first and last bytes (error path)."""
    try:
        size = stream.seek(0, 2)
        stream.seek(0)
        head = stream.read(4)
        stream.seek(max(size - 4, 0))
        tail = stream.read(4)
    except (OSError, ValueError):
        return f"{exc}"
    if size == 0:
        return "the file is empty (0 bytes); it was not written completely, or is a placeholder: remove or replace it"
    if head != b"PAR1":
        text = head.lstrip()[:1] in (b"{", b"[") or all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head)
        hint = " It looks like text: check source.format (csv, json, jsonl?)." if text else ""
        return f"it is not a Parquet file (it does not start with the Parquet magic bytes PAR1).{hint}"
    if tail != b"PAR1":
        return (
            f"the file is truncated ({size:,} bytes: it starts like a Parquet file but its footer is missing); "
            "it was cut off while being written or copied: copy it again"
        )
    return f"{exc}; the file may be corrupt: re-create it"


__all__ = ["ParquetFormat", "ParquetOptions"]
