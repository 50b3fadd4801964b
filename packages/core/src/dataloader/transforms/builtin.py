"""The built-in transform steps, column-wise with ``pyarrow.compute``.

``rename_columns``, ``cast``, ``add_column``, ``select_columns``, ``drop_columns``. None of them
loops over rows; ``cast`` only narrows down to the offending rows after a vectorised cast failed.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from dataloader._lazy import compute as pc
from dataloader.batch import Batch, positions
from dataloader.config import ConfigModel
from dataloader.errors import TransformError
from dataloader.transforms.base import Transform


def _require(data: pa.RecordBatch, names: list[str], what: str) -> None:
    missing = [name for name in names if name not in data.schema.names]
    if missing:
        raise TransformError(
            f"{what}: column(s) {', '.join(repr(m) for m in missing)} not found; "
            f"the data has {', '.join(data.schema.names)}",
            columns=missing,
        )


# -- rename_columns ----------------------------------------------------------------------------
class RenameColumnsConfig(ConfigModel):
    mapping: dict[str, str]


class RenameColumns(Transform):
    """``{type: rename_columns, mapping: {old: new}}``."""

    def apply(self, batch: Batch) -> Batch:
        data = batch.to_arrow()
        _require(data, list(self.config.mapping), "rename_columns")
        names = [self.config.mapping.get(name, name) for name in data.schema.names]
        if len(set(names)) != len(names):
            raise TransformError(f"rename_columns would give two columns the same name: {names}")
        return batch.replace(data.rename_columns(names))


# -- select / drop -----------------------------------------------------------------------------
class ColumnsConfig(ConfigModel):
    columns: list[str] = Field(min_length=1)


class SelectColumns(Transform):
    """``{type: select_columns, columns: [a, b]}``: keeps these, in this order."""

    def apply(self, batch: Batch) -> Batch:
        data = batch.to_arrow()
        _require(data, self.config.columns, "select_columns")
        return batch.replace(data.select(self.config.columns))


class DropColumns(Transform):
    """``{type: drop_columns, columns: [a, b]}``."""

    def apply(self, batch: Batch) -> Batch:
        data = batch.to_arrow()
        _require(data, self.config.columns, "drop_columns")
        keep = [name for name in data.schema.names if name not in set(self.config.columns)]
        return batch.replace(data.select(keep))


# -- add_column --------------------------------------------------------------------------------
class AddColumnConfig(ConfigModel):
    name: str
    value: Any = None
    #: Optional target type (same names as ``cast``); otherwise inferred from the value.
    column_type: str | None = None


class AddColumn(Transform):
    """``{type: add_column, name: source, value: "{{ recipe.name }}"}``: the same value on every row.

    Templates in ``value`` are rendered when the recipe loads, like every other value.
    """

    def __init__(self, config: AddColumnConfig) -> None:
        super().__init__(config)
        target = parse_type(config.column_type) if config.column_type else None
        try:
            self.scalar = pa.scalar(config.value, type=target) if target else pa.scalar(config.value)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise TransformError(f"add_column: value {config.value!r} does not fit type {config.column_type}") from exc
        if self.scalar.type == pa.null():
            self.scalar = pa.scalar(None, pa.string())

    def apply(self, batch: Batch) -> Batch:
        data = batch.to_arrow()
        if self.config.name in data.schema.names:
            raise TransformError(f"add_column: column '{self.config.name}' already exists; rename or drop it first")
        column = pa.repeat(self.scalar, data.num_rows)
        return batch.replace(data.append_column(self.config.name, column))


# -- cast --------------------------------------------------------------------------------------
_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "string": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "smallint": pa.int16(),
    "float": pa.float64(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")
_TRUE = ["true", "t", "yes", "y", "1", "on"]
_FALSE = ["false", "f", "no", "n", "0", "off"]


def parse_type(name: str) -> pa.DataType:
    """``int``, ``float``, ``bool``, ``str``, ``date``, ``datetime``, ``timestamptz``, ``decimal(p,s)`` ..."""
    key = name.strip().lower()
    if key in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[key]
    match = _DECIMAL.match(key)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal({precision},{scale}) is out of range (precision 1..38, scale <= precision)")
        return pa.decimal128(precision, scale)
    if key == "decimal":
        return pa.decimal128(38, 9)
    raise ValueError(f"unknown type '{name}'; use one of {', '.join(sorted(_SIMPLE_TYPES))} or decimal(p,s)")


class CastConfig(ConfigModel):
    columns: dict[str, str] = Field(min_length=1)
    #: ``fail`` stops the run naming the column, row and value; ``dlq`` sends bad rows to the dead-letter file.
    on_error: Literal["fail", "dlq"] = "fail"

    @field_validator("columns")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, type_name in value.items():
            try:
                parse_type(type_name)
            except ValueError as exc:
                raise ValueError(f"{column}: {exc}") from None
        return value


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def cast_array(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast with the conversions people expect from text (yes/no booleans, trimmed numbers)."""
    if array.type == target:
        return array
    if _is_text(array.type):
        if pa.types.is_boolean(target):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(array))
            is_true = pc.is_in(lowered, value_set=pa.array(_TRUE))
            is_false = pc.is_in(lowered, value_set=pa.array(_FALSE))
            bad = pc.and_(pc.is_valid(lowered), pc.invert(pc.or_(is_true, is_false)))
            if pc.any(bad).as_py():
                raise pa.ArrowInvalid("not a boolean")
            return pc.if_else(pc.is_null(lowered), pa.scalar(None, pa.bool_()), is_true)
        if pa.types.is_integer(target) or pa.types.is_floating(target) or pa.types.is_decimal(target):
            array = pc.utf8_trim_whitespace(array)
            array = pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)
        if pa.types.is_timestamp(target) or pa.types.is_date(target):
            array = pc.if_else(pc.equal(pc.utf8_trim_whitespace(array), ""), pa.scalar(None, array.type), array)
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type) and target.tz and not array.type.tz:
        return pc.assume_timezone(array, target.tz).cast(target)
    return pc.cast(array, target, safe=True)


def _bad_rows(array: pa.Array, target: pa.DataType) -> list[int]:
    """Positions that do not cast, found by bisection: O(bad rows x log n) vectorised casts."""
    bad: list[int] = []
    stack = [(0, len(array))]
    while stack:
        start, stop = stack.pop()
        try:
            cast_array(array.slice(start, stop - start), target)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        if stop - start == 1:
            bad.append(start)
        else:
            middle = (start + stop) // 2
            stack.extend([(middle, stop), (start, middle)])
    return sorted(bad)


class Cast(Transform):
    """``{type: cast, columns: {age: int, price: "decimal(12,2)", seen: datetime}}``."""

    def __init__(self, config: CastConfig) -> None:
        super().__init__(config)
        self.targets = {column: parse_type(name) for column, name in config.columns.items()}

    def apply(self, batch: Batch) -> Batch:
        data = batch.to_arrow()
        _require(data, list(self.targets), "cast")
        for column, target in self.targets.items():
            array = data.column(column)
            try:
                converted = cast_array(array, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                bad = _bad_rows(array, target)
                if not bad:
                    raise TransformError(f"cast: column '{column}' cannot become {target}: {exc}", column=column) from exc
                if self.config.on_error == "fail":
                    raise self._error(batch, column, target, bad) from exc
                batch = self._reject(batch, column, target, bad)
                data = batch.to_arrow()
                converted = cast_array(data.column(column), target)
            index = data.schema.get_field_index(column)
            data = data.set_column(index, pa.field(column, target), converted)
            batch = batch.replace(data)
        return batch

    def _error(self, batch: Batch, column: str, target: pa.DataType, bad: list[int]) -> TransformError:
        row = int(batch.metadata.get("row_offset", 0)) + bad[0] + 1
        value = batch.to_arrow().column(column)[bad[0]].as_py()
        where = f" of {batch.metadata['file']}" if batch.metadata.get("file") else ""
        more = f" ({len(bad)} bad values in this batch)" if len(bad) > 1 else ""
        return TransformError(
            f"cast: column '{column}', row {row}{where}: {value!r} is not a valid {target}{more}; "
            "fix the data, change the type, or set on_error: dlq",
            column=column,
            row=row,
            value=value,
        )

    def _reject(self, batch: Batch, column: str, target: pa.DataType, bad: list[int]) -> Batch:
        data = batch.to_arrow()
        keep = pc.invert(pc.is_in(positions(data.num_rows), value_set=pa.array(bad, pa.int64())))
        values = data.column(column)
        text = pc.cast(values, pa.string()) if not _is_text(values.type) else values
        message = pc.binary_join_element_wise(
            pa.scalar(f"cast: column '{column}': "), pc.fill_null(text, "null"), pa.scalar(f" is not a valid {target}"), ""
        )
        return batch.reject(keep, message)


BUILTIN_TRANSFORMS: list[tuple[str, type[Transform], type[ConfigModel]]] = [
    ("rename_columns", RenameColumns, RenameColumnsConfig),
    ("cast", Cast, CastConfig),
    ("add_column", AddColumn, AddColumnConfig),
    ("select_columns", SelectColumns, ColumnsConfig),
    ("drop_columns", DropColumns, ColumnsConfig),
]

__all__ = ["BUILTIN_TRANSFORMS", "parse_type", "cast_array"]
