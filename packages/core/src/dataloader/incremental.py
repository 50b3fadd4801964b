"""The incremental cursor: high-water mark and boundary rows, computed on Arrow columns.

Sources read ``cursor_column >= last_high_water`` (inclusive), because rows that share the
high-water value may be committed after the previous run read it. Inclusive reads would load the
rows at the boundary twice, so the previous run also stored the keys of the rows it loaded at the
high-water value; :class:`CursorTracker` drops exactly those, and records the keys at the new
high-water value for the next run. Keys are the ``primary_key`` columns, or the whole row.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dataloader._lazy import compute as pc
from dataloader.errors import EngineError
from dataloader.state import State

_SEP = "\x1f"
_NULL = "\x00"


def row_keys(data: pa.RecordBatch, columns: list[str]) -> pa.Array:
    """One string key per row from ``columns`` (vectorised: cast, fill nulls, join)."""
    parts = []
    for name in columns:
        column = data.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            text = column
        else:
            try:
                text = pc.cast(column, pa.string())
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                # Nested or exotic types have no cast to text; their JSON form is a stable key.
                text = pa.array([None if v is None else repr(v) for v in column.to_pylist()], pa.string())
        parts.append(pc.fill_null(text, _NULL))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, _SEP)


class CursorTracker:
    """Follows one cursor column across a run's batches."""

    def __init__(self, state: State, column: str, initial_value: Any, key_columns: list[str] | None) -> None:
        self.column = column
        self.key_columns = key_columns
        self.start = state.cursor_value(column, initial_value)
        self.seen = state.boundary_keys(column) if column in state.cursor_values else set()
        self.high = self.start
        self.keys_at_high: set[str] = set(self.seen)
        self.rows_skipped = 0

    def _keys(self, data: pa.RecordBatch) -> pa.Array:
        return row_keys(data, self.key_columns or list(data.schema.names))

    def _check_column(self, data: pa.RecordBatch) -> pa.Array:
        if self.column not in data.schema.names:
            raise EngineError(
                f"incremental cursor column '{self.column}' is not in the source's columns "
                f"({', '.join(data.schema.names)}); fix source.incremental.cursor_column",
                column=self.column,
            )
        if self.key_columns:
            missing = [name for name in self.key_columns if name not in data.schema.names]
            if missing:
                raise EngineError(
                    f"incremental primary_key column(s) {', '.join(missing)} are not in the source's columns",
                    columns=missing,
                )
        return data.column(self.column)

    def _scalar(self, value: Any, type_: pa.DataType) -> pa.Scalar:
        try:
            return pa.scalar(value, type=type_)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise EngineError(
                f"the saved cursor value {value!r} of '{self.column}' does not fit the column's type {type_}; "
                f"reset the state (dataloader reset-state) or fix incremental.initial_value",
                column=self.column,
            ) from exc

    def filter(self, data: pa.RecordBatch) -> pa.RecordBatch:
        """Drop rows already loaded at the previous high-water value."""
        column = self._check_column(data)
        if self.start is None or not self.seen or data.num_rows == 0:
            return data
        at_start = pc.fill_null(pc.equal(column, self._scalar(self.start, column.type)), False)
        if not pc.any(at_start).as_py():
            return data
        already = pc.is_in(self._keys(data), value_set=pa.array(sorted(self.seen), pa.string()))
        drop = pc.and_(at_start, already)
        keep = pc.invert(drop)
        self.rows_skipped += data.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
        return data.filter(keep)

    def observe(self, data: pa.RecordBatch) -> None:
        """Advance the high-water mark with the rows about to be written."""
        column = self._check_column(data)
        if data.num_rows == 0 or column.null_count == data.num_rows:
            return
        batch_max = pc.max(column).as_py()
        if self.high is not None and batch_max < self.high:
            return
        at_max = pc.fill_null(pc.equal(column, self._scalar(batch_max, column.type)), False)
        keys = self._keys(data.filter(at_max)).to_pylist()
        if self.high is None or batch_max > self.high:
            self.high = batch_max
            self.keys_at_high = set(keys)
        else:
            self.keys_at_high.update(keys)

    def save_to(self, state: State) -> None:
        if self.high is not None:
            state.set_cursor(self.column, self.high, boundary_keys=sorted(self.keys_at_high))


__all__ = ["CursorTracker", "row_keys"]
