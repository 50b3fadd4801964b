"""The recipe's column contract, applied to every batch after the transform steps.

:class:`ContractStep` is appended to the plan's steps when the recipe has a ``schema:`` section,
so the schema the destination is checked against (``output_schema``) is the contract's.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dataloader.batch import Batch
from dataloader.errors import TransformError
from dataloader.schema import types as ptypes


class ContractStep:
    """Enforces declared columns (``strict``/``lenient``) and fits rows to the table (``warn``)."""

    def __init__(self, section: Any) -> None:
        self.section = section
        self.declared = {column.name: column for column in section.columns}
        #: Set by the drift gate in ``warn`` mode: the table's columns, which the rows are fitted to.
        self.fit_to: dict[str, pa.DataType] | None = None

    def apply(self, batch: Batch) -> Batch:
        data = batch.to_arrow()
        offset = int(batch.metadata.get("row_offset") or 0)
        mode = self.section.mode
        if mode in ("strict", "lenient") and self.declared:
            data = self._enforce(data, offset, strict=mode == "strict")
        if self.fit_to is not None:
            data = self._fit(data)
        return batch.replace(data)

    def _enforce(self, data: Any, offset: int, *, strict: bool) -> Any:
        names = data.schema.names
        missing = [name for name in self.declared if name not in names]
        if missing:
            raise TransformError(
                f"schema contract: declared column {missing[0]!r} is not in the rows (columns: {', '.join(names)})",
                column=missing[0],
            )
        extra = [name for name in names if name not in self.declared]
        if strict and extra:
            raise TransformError(
                f"schema contract (strict): column {extra[0]!r} is not declared in schema.columns; declare it, "
                "drop it with a transform, or use schema.mode: lenient",
                column=extra[0],
            )
        import pyarrow.compute as pc

        columns, fields = [], []
        for field, column in zip(data.schema, data.columns, strict=True):
            spec = self.declared.get(field.name)
            if spec is None:
                columns.append(column)
                fields.append(field)
                continue
            if (not spec.nullable or spec.primary_key) and column.null_count:
                row = offset + _first(pc.is_null(column)) + 1
                raise TransformError(
                    f"schema contract: column {field.name!r} is null in source row {row}, but it is declared "
                    f"{'a primary key' if spec.primary_key else 'nullable: false'}",
                    column=field.name,
                    row=row,
                )
            wanted = ptypes.to_arrow(spec.type)
            if not column.type.equals(wanted):
                column = self._cast(field.name, column, spec.type, wanted, offset, strict=strict)
            if spec.unique or spec.primary_key:
                counts = pc.value_counts(column)
                twice = pc.filter(counts, pc.greater(counts.field("counts"), 1))
                if len(twice):
                    value = twice[0]["values"].as_py()
                    raise TransformError(
                        f"schema contract: column {field.name!r} is declared unique but {value!r} appears more "
                        "than once in one batch",
                        column=field.name,
                    )
            columns.append(column)
            fields.append(pa.field(field.name, wanted, nullable=spec.nullable and not spec.primary_key))
        return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))

    def _cast(self, name: str, column: Any, declared: str, wanted: pa.DataType, offset: int, *, strict: bool) -> Any:
        have = ptypes.from_arrow(column.type)
        if strict and have != "null" and not ptypes.holds(declared, have):
            raise TransformError(
                f"schema contract (strict): column {name!r} is {have} but is declared {declared}",
                column=name,
            )
        try:
            return column.cast(wanted, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            row = offset + _first_bad(column, wanted) + 1
            value = column[row - offset - 1].as_py()
            raise TransformError(
                f"schema contract: column {name!r} in source row {row} holds {value!r}, which is not a {declared}",
                column=name,
                row=row,
            ) from None

    def _fit(self, data: Any) -> Any:
        """``warn``: keep the table's columns only, cast to the table's types (the lossless ones)."""
        keep = [name for name in data.schema.names if name in self.fit_to]
        data = data.select(keep)
        columns = []
        for field, column in zip(data.schema, data.columns, strict=True):
            target = self.fit_to[field.name]
            if not column.type.equals(target) and not pa.types.is_null(column.type):
                try:
                    column = column.cast(target, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise TransformError(
                        f"schema evolution (warn): column {field.name!r} has values that do not fit the table's "
                        f"{ptypes.from_arrow(target)} column; nothing was written",
                        column=field.name,
                    ) from None
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, names=data.schema.names)


def _first(mask: Any) -> int:
    for index, value in enumerate(mask.to_pylist()):
        if value:
            return index
    return 0


def _first_bad(column: Any, wanted: pa.DataType) -> int:
    for index in range(len(column)):
        try:
            column.slice(index, 1).cast(wanted, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index
    return 0


__all__ = ["ContractStep"]
