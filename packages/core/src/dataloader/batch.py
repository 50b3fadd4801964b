"""The unit of data that flows between connectors and transforms.

A :class:`Batch` is an Arrow record batch plus a metadata dict. Connectors and transforms should
stay in Arrow (``to_arrow`` / ``from_arrow``); the row-oriented accessors exist as an adapter for
small tests and simple plugins, and are deliberately not used on any hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa


class Batch:
    """An Arrow record batch with metadata (source file, row offset, ...)."""

    __slots__ = ("_data", "metadata")

    def __init__(self, data: pa.RecordBatch, metadata: dict[str, Any] | None = None) -> None:
        if isinstance(data, pa.Table):
            data = data.combine_chunks().to_batches()[0] if data.num_rows else _empty_batch(data.schema)
        if not isinstance(data, pa.RecordBatch):
            raise TypeError(f"Batch needs a pyarrow.RecordBatch, got {type(data).__name__}")
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
        return self._data

    @property
    def schema(self) -> pa.Schema:
        return self._data.schema

    @property
    def columns(self) -> list[str]:
        return list(self._data.schema.names)

    @property
    def rows(self) -> list[list[Any]]:
        return [list(row.values()) for row in self._data.to_pylist()]

    @property
    def row_count(self) -> int:
        return self._data.num_rows

    def __len__(self) -> int:
        return self._data.num_rows

    def replace(self, data: pa.RecordBatch) -> Batch:
        """A new batch with other data and the same metadata."""
        return Batch(data, self.metadata)

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


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=field.type) for field in schema], schema=schema)


__all__ = ["Batch", "DictBatch"]
