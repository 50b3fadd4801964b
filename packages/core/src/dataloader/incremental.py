"""The incremental cursor: high-water mark and boundary rows, computed on Arrow columns.

Sources read ``cursor_column >= last_high_water`` (inclusive), because rows that share the
high-water value may be committed after the previous run read it. Inclusive reads would load the
rows at the boundary twice, so the previous run also stored the keys of the rows it loaded at the
high-water value; :class:`CursorTracker` drops exactly those, and records the keys at the new
high-water value for the next run.

Keys are the ``primary_key`` columns. Without a primary key a row is its own key, stored as a
short digest so that state stays small whatever the rows hold; more than :data:`MAX_ROW_TIES` rows
at the high-water value without a key is an error that asks for ``primary_key`` (a state that grows
with the data would fail the commit that stores it).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from dataloader._lazy import compute as pc
from dataloader.errors import EngineError
from dataloader.state import State

_SEP = "\x1f"
_NULL = "\x00"
#: Rows sharing the high-water value that a recipe without ``primary_key`` may have.
MAX_ROW_TIES = 10_000
#: How keys of whole rows are stored: a digest of the row.
ROW_DIGEST = "row-digest"


def row_digests(keys: pa.Array) -> pa.Array:
    """Short digests of whole-row keys (only rows at the high-water value get here)."""
    # A Python loop, but over tied rows only, and Arrow has no public hash kernel to do it for us.
    return pa.array(
        [hashlib.blake2b(k.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest() for k in keys.to_pylist()],
        pa.string(),
    )


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
        mark = state.watermarks.get(column) or {}
        # State written before digests keeps whole-row keys until the high-water value moves on.
        self.legacy_rows = not key_columns and bool(self.seen) and mark.get("key_form") != ROW_DIGEST
        self.high = self.start
        self.keys_at_high: set[str] = set(self.seen)
        self.rows_skipped = 0

    def _keys(self, data: pa.RecordBatch, *, legacy: bool = False) -> pa.Array:
        keys = row_keys(data, self.key_columns or list(data.schema.names))
        if self.key_columns or legacy:
            return keys
        return row_digests(keys)

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
        column = _cursor_view(self._check_column(data))
        if self.start is None or not self.seen or data.num_rows == 0:
            return data
        at_start = pc.fill_null(pc.equal(column, self._scalar(self.start, column.type)), False)
        if not pc.any(at_start).as_py():
            return data
        candidates = data.filter(at_start)
        already = pc.is_in(self._keys(candidates, legacy=self.legacy_rows), value_set=pa.array(sorted(self.seen), pa.string()))
        # Scatter the verdicts on the rows at the boundary back over the whole batch.
        drop = pc.replace_with_mask(pa.array([False] * data.num_rows, pa.bool_()), at_start, already)
        keep = pc.invert(drop)
        self.rows_skipped += data.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
        return data.filter(keep)

    def observe(self, data: pa.RecordBatch) -> None:
        """Advance the high-water mark with the rows about to be written."""
        column = _cursor_view(self._check_column(data))
        if data.num_rows == 0 or column.null_count == data.num_rows:
            return
        batch_max = pc.max(column).as_py()
        if self.high is not None and batch_max < self.high:
            return
        at_max = pc.fill_null(pc.equal(column, self._scalar(batch_max, column.type)), False)
        same_as_start = self.high == self.start and batch_max == self.start
        keys = self._keys(data.filter(at_max), legacy=self.legacy_rows and same_as_start).to_pylist()
        if self.high is None or batch_max > self.high:
            self.high = batch_max
            self.keys_at_high = set(keys)
            self.legacy_rows = False
        else:
            self.keys_at_high.update(keys)
        if not self.key_columns and len(self.keys_at_high) > MAX_ROW_TIES:
            raise EngineError(
                f"more than {MAX_ROW_TIES:,} rows share the cursor value {self.high!r} of '{self.column}', and "
                "without source.incremental.primary_key each of them would be remembered in the state; "
                "set primary_key to the column(s) that identify a row",
                column=self.column,
            )

    def export(self) -> dict[str, Any]:
        """This tracker's mark, small and serialisable: what a partition read on a worker hands back."""
        return {"high": self.high, "keys": sorted(self.keys_at_high), "legacy_rows": self.legacy_rows, "skipped": self.rows_skipped}

    def combine(self, mark: dict[str, Any]) -> None:
        """Fold in another partition's :meth:`export`: the highest value wins, ties pool their keys."""
        self.rows_skipped += int(mark.get("skipped") or 0)
        high = mark.get("high")
        if high is None or (self.high is not None and high < self.high):
            return
        if self.high is None or high > self.high:
            self.high = high
            self.keys_at_high = set(mark.get("keys") or [])
            self.legacy_rows = bool(mark.get("legacy_rows"))
        else:
            self.keys_at_high.update(mark.get("keys") or [])
            self.legacy_rows = self.legacy_rows and bool(mark.get("legacy_rows"))

    def save_to(self, state: State) -> None:
        if self.high is not None:
            form = None if self.key_columns or self.legacy_rows else ROW_DIGEST
            state.set_cursor(self.column, self.high, boundary_keys=sorted(self.keys_at_high), key_form=form)


def _cursor_view(column: pa.Array) -> pa.Array:
    """The cursor column as the high-water value sees it: nanosecond timestamps floored to microseconds.

    A high-water value is a Python ``datetime``, which holds microseconds (Arrow would need pandas
    to give a nanosecond value). Floored, the saved value is the microsecond of the newest rows; the
    next run reads ``>=`` it, so every row of that microsecond comes again, and the keys of all of
    them are remembered, so none is loaded twice.
    """
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        return pc.floor_temporal(column, unit="microsecond").cast(pa.timestamp("us", tz=column.type.tz))
    return column


__all__ = ["CursorTracker", "row_keys"]
