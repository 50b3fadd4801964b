"""The unit of data that flows between connectors and transforms.

A :class:`Batch` is an Arrow record batch plus a metadata dict. Connectors and transforms should
stay in Arrow (``to_arrow`` / ``from_arrow``); the row-oriented accessors exist as an adapter for
small tests and simple plugins, and are deliberately not used on any hot path.

Rejecting rows is part of the batch: a transform step or a quality check calls
:meth:`Batch.reject` with a mask of the rows to keep and why the others failed. The returned batch
holds the kept rows and carries the rejected ones (with ``__error`` and ``__row``, the row number in
the run from 1); the engine takes them after every step (:meth:`Batch.take_rejected`), writes them to
the run's dead-letter file and counts them against ``runtime.max_failed_rows``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from dataloader._lazy import compute as pc

#: Columns a rejected-rows table has beside the row's own: why it was rejected, and its row number.
ERROR_COLUMN = "__error"
ROW_COLUMN = "__row"


class Batch:
    """An Arrow record batch with metadata (source file, row offset, ...).

    A batch may hold its rows as several record batches of one schema (the engine joins a source's
    small batches into one of ``runtime.batch_size`` rows without copying them). ``to_arrow`` joins
    them into one record batch on first use; a writer that can take the pieces one after another
    uses ``to_arrow_chunks`` and never pays for that copy.
    """

    __slots__ = ("_data", "_chunks", "_rejected", "metadata")

    def __init__(self, data: pa.RecordBatch | pa.Table, metadata: dict[str, Any] | None = None) -> None:
        self._data: pa.RecordBatch | None = None
        self._chunks: pa.Table | None = None
        self._rejected: pa.Table | None = None
        if isinstance(data, pa.Table):
            chunks = data.to_batches()
            if data.num_rows == 0:
                data = _empty_batch(data.schema)
            elif len(chunks) == 1:
                data = chunks[0]
            else:
                self._chunks = data
        elif not isinstance(data, pa.RecordBatch):
            raise TypeError(f"Batch needs a pyarrow.RecordBatch, got {type(data).__name__}")
        if self._chunks is None:
            self._data = data
        self.metadata: dict[str, Any] = dict(metadata or {})

    @classmethod
    def from_arrow(cls, record_batch: pa.RecordBatch | pa.Table, metadata: dict[str, Any] | None = None) -> Batch:
        return cls(record_batch, metadata)

    @classmethod
    def from_rows(
        cls,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        metadata: dict[str, Any] | None = None,
        schema: pa.Schema | None = None,
    ) -> Batch:
        """Build a batch from Python rows; Arrow infers types unless ``schema`` is given."""
        columns = list(columns)
        for index, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(f"row {index} has {len(row)} values but there are {len(columns)} columns")
        # Transposing Python rows is inherently per-row; this constructor is an adapter, not a hot path.
        arrays = [[row[i] for row in rows] for i in range(len(columns))]
        if schema is not None:
            record_batch = pa.RecordBatch.from_arrays(
                [pa.array(values, type=schema.field(name).type) for name, values in zip(columns, arrays, strict=False)],
                schema=schema,
            )
        else:
            record_batch = pa.RecordBatch.from_arrays([pa.array(values) for values in arrays], names=columns)
        return cls(record_batch, metadata)

    def to_arrow(self) -> pa.RecordBatch:
        """The rows as one record batch (joining the pieces, once, when there are several)."""
        if self._data is None:
            assert self._chunks is not None
            self._data = self._chunks.combine_chunks().to_batches(max_chunksize=None)[0]
            self._chunks = None
        return self._data

    def to_arrow_chunks(self) -> list[pa.RecordBatch]:
        """The rows as record batches of one schema, in order, without copying them."""
        if self._chunks is not None:
            return self._chunks.to_batches()
        assert self._data is not None
        return [self._data]

    @property
    def _arrow(self) -> pa.RecordBatch | pa.Table:
        return self._data if self._data is not None else self._chunks  # type: ignore[return-value]

    @property
    def schema(self) -> pa.Schema:
        return self._arrow.schema

    @property
    def columns(self) -> list[str]:
        return list(self._arrow.schema.names)

    @property
    def rows(self) -> list[list[Any]]:
        return [list(row.values()) for row in self._arrow.to_pylist()]

    @property
    def row_count(self) -> int:
        return self._arrow.num_rows

    def __len__(self) -> int:
        return self._arrow.num_rows

    def replace(self, data: pa.RecordBatch | pa.Table) -> Batch:
        """A new batch with other data, the same metadata and the rows rejected so far."""
        replaced = Batch(data, self.metadata)
        replaced._rejected = self._rejected
        return replaced

    def reject(self, keep: pa.Array, errors: pa.Array | str) -> Batch:
        """The rows where ``keep`` is true; the others leave the load with their error.

        :param keep: a boolean array, one value per row: true keeps the row. A null counts as true.
        :param errors: why each row failed: one string for all of them, or a string array with one
            value per row (only the rejected rows' values are read).
        :returns: a new batch with the kept rows and the same metadata, carrying the rejected rows
            (these and any rejected earlier) for the engine's dead-letter file.
        """
        data = self.to_arrow()
        if len(keep) != data.num_rows:
            raise ValueError(f"reject: keep has {len(keep)} values for {data.num_rows} rows")
        keep = pc.fill_null(keep, True)
        drop = pc.invert(keep)
        if isinstance(errors, str):
            errors = pa.repeat(pa.scalar(errors, pa.string()), data.num_rows)
        rows = positions(data.num_rows, int(self.metadata.get("row_offset", 0)) + 1)
        rejected = pa.Table.from_batches([data.filter(drop)])
        rejected = rejected.append_column(ERROR_COLUMN, errors.filter(drop).cast(pa.string()))
        rejected = rejected.append_column(ROW_COLUMN, rows.filter(drop))
        if self._rejected is not None:
            rejected = pa.concat_tables([self._rejected, rejected], promote_options="permissive")
        kept = Batch(data.filter(keep), self.metadata)
        kept._rejected = rejected if rejected.num_rows else self._rejected
        return kept

    @property
    def rejected(self) -> pa.Table | None:
        """The rows rejected on the way here (with ``__error`` and ``__row``), or None."""
        return self._rejected

    def take_rejected(self) -> pa.Table | None:
        """The rejected rows, removed from the batch (the engine's dead-letter hand-off)."""
        rejected, self._rejected = self._rejected, None
        return rejected

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "metadata": dict(self.metadata)}

    def __repr__(self) -> str:
        return f"Batch(rows={self.row_count}, columns={self.columns!r})"


class DictBatch(Batch):
    """A :class:`Batch` built from ``columns`` and ``rows`` keyword arguments."""

    __slots__ = ()

    def __init__(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        metadata: dict[str, Any] | None = None,
        schema: pa.Schema | None = None,
    ) -> None:
        built = Batch.from_rows(columns, rows, metadata, schema=schema)
        super().__init__(built.to_arrow(), built.metadata)


def positions(count: int, start: int = 0) -> pa.Array:
    """``start, start + 1, ...`` as an int64 array, built by Arrow (no Python list of rows)."""
    if count == 0:
        return pa.array([], pa.int64())
    ones = pa.repeat(pa.scalar(1, pa.int64()), count)
    return pc.add(pc.cumulative_sum(ones), pa.scalar(start - 1, pa.int64()))


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=field.type) for field in schema], schema=schema)


def rechunk(batches: Iterator[Batch], size: int) -> Iterator[Batch]:
    """Re-cut batches to ``size`` rows: big ones are sliced, small ones are joined, all without copying.

    Batches join only while they share a schema and metadata (rows of one file stay together so a
    row number can name its file).
    """
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    pending_meta: dict[str, Any] = {}

    def flush() -> Iterator[Batch]:
        nonlocal pending, pending_rows
        if not pending:
            return
        # Several pieces stay pieces (no copy): Batch joins them only if someone asks for one record batch.
        joined = pending[0] if len(pending) == 1 else pa.Table.from_batches(pending)
        pending, pending_rows = [], 0
        yield Batch(joined, dict(pending_meta))

    for batch in batches:
        if batch.row_count == 0:
            continue
        if pending and (batch.schema != pending[0].schema or _identity(batch.metadata) != _identity(pending_meta)):
            yield from flush()
        for data in batch.to_arrow_chunks():
            if not pending:
                pending_meta = dict(batch.metadata)
                pending_meta.pop("row_offset", None)
            start = 0
            while start < data.num_rows:
                take = min(size - pending_rows, data.num_rows - start)
                pending.append(data.slice(start, take))
                pending_rows += take
                start += take
                if pending_rows >= size:
                    yield from flush()
    yield from flush()


def _identity(metadata: dict[str, Any]) -> Any:
    return metadata.get("file")


__all__ = ["Batch", "DictBatch", "ERROR_COLUMN", "ROW_COLUMN", "positions", "rechunk"]
