"""Portable type names, their Arrow types, and the widening lattice.

A portable type name is how a recipe's ``schema:`` section, the schema history and every
connector's mapping table spell a column type: ``bool``, ``int8`` ... ``int64``, ``float32``,
``float64``, ``decimal(P,S)``, ``string``, ``binary``, ``date``, ``time``, ``timestamp``,
``timestamp_tz`` and ``null`` (a column with no value yet, which fits any type).

:func:`widen` is the lattice: the narrowest type holding every value of two types, or None.
"""

from __future__ import annotations

import re

import pyarrow as pa

from dataloader.errors import RecipeError

INTEGERS = ("int8", "int16", "int32", "int64")
SCALARS = ("bool", *INTEGERS, "float32", "float64", "string", "binary", "date", "time", "timestamp", "timestamp_tz")
#: Decimal digits each integer type needs (for joining integers with decimals).
INT_DIGITS = {"int8": 3, "int16": 5, "int32": 10, "int64": 19}
MAX_DECIMAL_PRECISION = 38
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_ALIASES = {"boolean": "bool", "int": "int64", "integer": "int64", "bigint": "int64", "float": "float64",
            "double": "float64", "text": "string", "str": "string", "bytes": "binary", "datetime": "timestamp"}


def parse(name: str) -> str:
    """The canonical spelling of a portable type name; RecipeError for an unknown one."""
    text = "".join(str(name).strip().lower().split())
    text = _ALIASES.get(text, text)
    match = _DECIMAL.match(text)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
            raise RecipeError(f"type {name!r}: a decimal needs 1 <= precision <= 38 and scale <= precision")
        return f"decimal({precision},{scale})"
    if text in SCALARS or text == "null":
        return text
    raise RecipeError(f"unknown type {name!r}; portable types are: {', '.join(SCALARS)}, decimal(P,S)")


def decimal_of(name: str) -> tuple[int, int] | None:
    match = _DECIMAL.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def to_arrow(name: str) -> pa.DataType:
    name = parse(name)
    found = decimal_of(name)
    if found is not None:
        return pa.decimal128(*found)
    return {
        "null": pa.null(), "bool": pa.bool_(), "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(),
        "int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(), "string": pa.string(),
        "binary": pa.binary(), "date": pa.date32(), "time": pa.time64("us"), "timestamp": pa.timestamp("us"),
        "timestamp_tz": pa.timestamp("us", tz="UTC"),
    }[name]


def from_arrow(type_: pa.DataType) -> str:
    """The portable name of an Arrow type (unsigned integers map to the signed type that holds them)."""
    t = type_.storage_type if isinstance(type_, pa.ExtensionType) else type_
    checks = (
        (pa.types.is_null, "null"), (pa.types.is_boolean, "bool"), (pa.types.is_int8, "int8"),
        (pa.types.is_int16, "int16"), (pa.types.is_int32, "int32"), (pa.types.is_int64, "int64"),
        (pa.types.is_uint8, "int16"), (pa.types.is_uint16, "int32"), (pa.types.is_uint32, "int64"),
        (pa.types.is_float16, "float32"), (pa.types.is_float32, "float32"), (pa.types.is_float64, "float64"),
        (pa.types.is_string, "string"), (pa.types.is_large_string, "string"), (pa.types.is_binary, "binary"),
        (pa.types.is_large_binary, "binary"), (pa.types.is_date, "date"), (pa.types.is_time, "time"),
    )
    for test, name in checks:
        if test(t):
            return name
    if pa.types.is_uint64(t):
        return "decimal(20,0)"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp_tz" if t.tz else "timestamp"
    return str(t)  # a nested or exotic type keeps Arrow's own spelling and matches only itself


def widen(a: str, b: str) -> str | None:
    """The narrowest portable type that holds every value of ``a`` and of ``b``; None when none does.

    The lattice: ``int8 < int16 < int32 < int64 < decimal(19+s, s)``; ``int8..int32 < float64``;
    ``float32 < float64``; ``decimal(p1,s1), decimal(p2,s2) < decimal(max integer digits + max s, max s)``
    (up to 38 digits); ``date < timestamp``; ``null`` below everything. Nothing else widens (an
    ``int64`` is not a ``float64``: it would lose digits past 2**53; a number is not a ``string``).
    """
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if a in INTEGERS and b in INTEGERS:
        return max(a, b, key=INTEGERS.index)
    for x, y in ((a, b), (b, a)):
        if x in INTEGERS and y in ("float32", "float64"):
            return "float64" if x != "int64" else None
        if x in INTEGERS and decimal_of(y) is not None:
            return _join_decimals((INT_DIGITS[x], 0), decimal_of(y))
    if {a, b} == {"float32", "float64"}:
        return "float64"
    if decimal_of(a) is not None and decimal_of(b) is not None:
        return _join_decimals(decimal_of(a), decimal_of(b))
    if {a, b} == {"date", "timestamp"}:
        return "timestamp"
    return None


def _join_decimals(a: tuple[int, int], b: tuple[int, int]) -> str | None:
    scale = max(a[1], b[1])
    precision = max(a[0] - a[1], b[0] - b[1]) + scale
    return f"decimal({precision},{scale})" if precision <= MAX_DECIMAL_PRECISION else None


def holds(wide: str, narrow: str) -> bool:
    """Whether every value of ``narrow`` is a value of ``wide`` (a load of ``narrow`` rows fits as is)."""
    return widen(wide, narrow) == wide


def native(mapping: dict[str, str] | None, name: str) -> str:
    """A portable type in a connector's mapping table (``decimal`` entries hold ``{p}``/``{s}``)."""
    if not mapping:
        return name
    found = decimal_of(name)
    if found is not None and "decimal" in mapping:
        return mapping["decimal"].format(p=found[0], s=found[1])
    return mapping.get(name, name)


__all__ = ["INTEGERS", "SCALARS", "decimal_of", "from_arrow", "holds", "native", "parse", "to_arrow", "widen"]
