"""Arrow ↔ Snowflake types, as one table of data.

:data:`TYPE_TABLE` is the single home of the mapping: the destination creates columns from it, the
source reads columns back through it, ``docs/connectors/snowflake.md`` prints it, and the tests
round-trip every row of it. Each rule says which Arrow types it writes, the Snowflake column it
creates, what a read of that column returns, and how the Parquet load gets the value in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dataloader_snowflake.names import quote

#: Snowflake types that hold semi-structured data; loaded from JSON text with ``PARSE_JSON``.
SEMI_STRUCTURED = frozenset({"VARIANT", "OBJECT", "ARRAY"})
#: Field metadata key naming the Snowflake type a column was read from (VARIANT, TIMESTAMP_LTZ ...).
METADATA_KEY = b"snowflake_type"


@dataclass(frozen=True)
class TypeRule:
    """One row of the type table."""

    arrow: str  # the Arrow types this rule writes, as the docs name them
    snowflake: str  # the column the destination creates
    reads_as: str  # the Arrow type a read of such a column returns
    matches: Callable[[pa.DataType], bool]
    ddl: Callable[[pa.DataType], str]
    note: str = ""


def _unit_digits(unit: str) -> int:
    return {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit]


def _int_ddl(t: pa.DataType) -> str:
    digits = {8: 3, 16: 5, 32: 10, 64: 19}[t.bit_width]
    if pa.types.is_unsigned_integer(t):
        digits = {8: 3, 16: 5, 32: 10, 64: 20}[t.bit_width]
    return f"NUMBER({digits},0)"


def _decimal_ddl(t: pa.DataType) -> str:
    if t.precision > 38:
        raise ValueError(f"decimal({t.precision},{t.scale}) does not fit Snowflake's NUMBER (at most 38 digits)")
    return f"NUMBER({t.precision},{t.scale})"


TYPE_TABLE: tuple[TypeRule, ...] = (
    TypeRule("bool", "BOOLEAN", "bool", pa.types.is_boolean, lambda t: "BOOLEAN"),
    TypeRule(
        "int8, int16, int32, int64, uint8 … uint64",
        "NUMBER(3|5|10|19|20,0)",
        "int64 (precision ≤ 19); decimal128(p,0) above",
        pa.types.is_integer,
        _int_ddl,
        "a NUMBER(19,0) or NUMBER(20,0) value beyond int64 is an error when read; declare the column wider to read it as decimal",
    ),
    TypeRule("float16, float32, float64", "FLOAT", "float64", pa.types.is_floating, lambda t: "FLOAT"),
    TypeRule(
        "decimal128(p,s), decimal256(p ≤ 38,s)",
        "NUMBER(p,s)",
        "decimal128(p,s)",
        pa.types.is_decimal,
        _decimal_ddl,
        "precision above 38 is refused before anything is written",
    ),
    TypeRule(
        "string, large_string",
        "VARCHAR",
        "string",
        lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        lambda t: "VARCHAR",
        "a string column loads into an existing VARIANT/OBJECT/ARRAY column with PARSE_JSON",
    ),
    TypeRule(
        "binary, large_binary, fixed_size_binary",
        "BINARY",
        "binary",
        lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t),
        lambda t: "BINARY",
        "at most 8 MB per value",
    ),
    TypeRule("date32, date64", "DATE", "date32", pa.types.is_date, lambda t: "DATE"),
    TypeRule(
        "time32, time64",
        "TIME(0|3|6|9)",
        "time64(us), or time64(ns) for TIME(7..9)",
        pa.types.is_time,
        lambda t: f"TIME({_unit_digits(t.unit)})",
    ),
    TypeRule(
        "timestamp(unit) without a time zone",
        "TIMESTAMP_NTZ(0|3|6|9)",
        "timestamp(us), or timestamp(ns) for scale 7..9",
        lambda t: pa.types.is_timestamp(t) and t.tz is None,
        lambda t: f"TIMESTAMP_NTZ({_unit_digits(t.unit)})",
    ),
    TypeRule(
        "timestamp(unit, tz)",
        "TIMESTAMP_TZ(0|3|6|9)",
        "timestamp(us, UTC) (TIMESTAMP_TZ and TIMESTAMP_LTZ alike)",
        lambda t: pa.types.is_timestamp(t) and t.tz is not None,
        lambda t: f"TIMESTAMP_TZ({_unit_digits(t.unit)})",
        "the instant is kept; the original offset of a TIMESTAMP_TZ value is not (Arrow has one zone per column)",
    ),
    TypeRule(
        "list, large_list, fixed_size_list",
        "ARRAY",
        "string (JSON text), field metadata snowflake_type=ARRAY",
        lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t),
        lambda t: "ARRAY",
    ),
    TypeRule(
        "struct, map",
        "OBJECT",
        "string (JSON text), field metadata snowflake_type=OBJECT",
        lambda t: pa.types.is_struct(t) or pa.types.is_map(t),
        lambda t: "OBJECT",
    ),
    TypeRule(
        "null (a column with no value yet)",
        "VARCHAR",
        "string",
        pa.types.is_null,
        lambda t: "VARCHAR",
        "a later run with typed values fails if they do not convert to text; declare the type with a cast step",
    ),
    TypeRule(
        "string listed in variant_columns (JSON text)",
        "VARIANT",
        "string (JSON text), field metadata snowflake_type=VARIANT",
        lambda t: False,  # chosen by the destination's variant_columns key, never by the Arrow type
        lambda t: "VARIANT",
        "loaded with PARSE_JSON; text that is not JSON fails the load naming the file",
    ),
)


def snowflake_type(t: pa.DataType) -> str:
    """The Snowflake column type the destination creates for Arrow type ``t``."""
    if pa.types.is_dictionary(t):
        return snowflake_type(t.value_type)
    for rule in TYPE_TABLE:
        if rule.matches(t):
            return rule.ddl(t)
    raise ValueError(f"Arrow type {t} has no Snowflake column type; cast it first (a cast transform step)")


def column_ddl(field: pa.Field, variant: bool = False) -> str:
    return f"{quote(field.name)} {'VARIANT' if variant else snowflake_type(field.type)}"


def _ts_unit(scale: int | None) -> str:
    scale = 9 if scale is None else scale
    return "s" if scale == 0 else "ms" if scale <= 3 else "us" if scale <= 6 else "ns"


def _tagged(name: str, t: pa.DataType, kind: str) -> pa.Field:
    return pa.field(name, t, metadata={METADATA_KEY: kind.encode()})


def read_field(name: str, kind: str, precision: int | None, scale: int | None) -> pa.Field:
    """The Arrow field a read of a Snowflake column of ``kind`` (the driver's type name) returns."""
    kind = kind.upper()
    if kind == "FIXED":
        if (scale or 0) == 0:
            if (precision or 38) <= 19:
                return pa.field(name, pa.int64())
            return pa.field(name, pa.decimal128(precision or 38, 0))
        return pa.field(name, pa.decimal128(precision or 38, scale or 0))
    if kind == "REAL":
        return pa.field(name, pa.float64())
    if kind == "TEXT":
        return pa.field(name, pa.string())
    if kind == "BINARY":
        return pa.field(name, pa.binary())
    if kind == "BOOLEAN":
        return pa.field(name, pa.bool_())
    if kind == "DATE":
        return pa.field(name, pa.date32())
    if kind == "TIME":
        return pa.field(name, pa.time64("ns" if (scale if scale is not None else 9) > 6 else "us"))
    if kind in ("TIMESTAMP_NTZ", "TIMESTAMP"):
        return pa.field(name, pa.timestamp(_ts_unit(scale)))
    if kind in ("TIMESTAMP_TZ", "TIMESTAMP_LTZ"):
        return _tagged(name, pa.timestamp(_ts_unit(scale), tz="UTC"), kind)
    if kind in SEMI_STRUCTURED:
        return _tagged(name, pa.string(), kind)
    raise ValueError(f"column {name!r} has Snowflake type {kind}, which dataloader does not read; cast it in a query")


def conform(column: Any, field: pa.Field) -> Any:
    """``column`` (as the driver returned it) cast to ``field``'s type; overflow is an error."""
    target = field.type
    if column.type == target:
        return column
    if pa.types.is_timestamp(column.type) and pa.types.is_timestamp(target) and column.type.tz and target.tz:
        column = column.cast(pa.timestamp(column.type.unit, tz=target.tz))  # relabels: the instant is the same
        if column.type == target:
            return column
    return column.cast(target)  # safe cast: a value that does not fit raises


def markdown_table() -> str:
    """:data:`TYPE_TABLE` as the Markdown table printed in ``docs/connectors/snowflake.md``."""
    lines = ["| Arrow (written) | Snowflake column created | read back as | note |", "|---|---|---|---|"]
    for rule in TYPE_TABLE:
        lines.append(f"| {rule.arrow} | `{rule.snowflake}` | {rule.reads_as} | {rule.note} |")
    return "\n".join(lines)


__all__ = ["markdown_table", "METADATA_KEY", "SEMI_STRUCTURED", "TYPE_TABLE", "TypeRule", "column_ddl", "conform", "read_field", "snowflake_type"]
