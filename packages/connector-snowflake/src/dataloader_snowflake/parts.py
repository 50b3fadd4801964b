"""Parquet parts: the rows of one write, streamed to local files and uploaded with ``PUT``.

A part is written row group by row group (one per batch) into a temporary file; once it reaches
``part_size_mb`` it is closed, uploaded under the write's stage prefix and deleted. So a write
holds at most one batch in memory and one part on the local disk, whatever its size.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Column added to each row of a merge, numbering the rows in load order: the last row of a key wins.
SEQ = "_dataloader_seq"


class PartWriter:
    """Writes batches into Parquet parts and hands each finished part to ``upload(path)``."""

    def __init__(self, upload: Callable[[Path], None], part_bytes: int, *, numbered: bool) -> None:
        self._upload = upload
        self._part_bytes = part_bytes
        self._numbered = numbered
        self._dir = Path(tempfile.mkdtemp(prefix="dataloader-snowflake-"))
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._schema: pa.Schema | None = None
        self.parts = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._numbered:
            seq = pa.array(range(self.rows, self.rows + batch.num_rows), pa.int64())
            batch = pa.RecordBatch.from_arrays([*batch.columns, seq], names=[*batch.schema.names, SEQ])
        if self._writer is None:
            self.parts += 1
            self._path = self._dir / f"part-{self.parts:05d}.parquet"
            self._schema = batch.schema
            self._writer = pq.ParquetWriter(self._path, batch.schema, compression="snappy")
        elif batch.schema != self._schema:
            batch = batch.cast(self._schema)  # same names, a compatible type (the engine's batches share one schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        assert self._path is not None
        if self._path.stat().st_size >= self._part_bytes:
            self.flush()

    def flush(self) -> None:
        """Close and upload the open part, if any."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        assert self._path is not None
        try:
            self._upload(self._path)
        finally:
            self._path.unlink(missing_ok=True)

    def close(self) -> None:
        """Forget everything not yet uploaded and remove the local files."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except (OSError, pa.ArrowException):
                pass  # the part is discarded anyway
        shutil.rmtree(self._dir, ignore_errors=True)


__all__ = ["SEQ", "PartWriter"]
