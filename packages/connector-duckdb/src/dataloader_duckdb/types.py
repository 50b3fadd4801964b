"""When may a column that exists in the table receive values of another type?

The staging table's DuckDB types (DuckDB's own mapping of the Arrow schema) are compared with the
target table's. :func:`reconcile` answers with the type the target column must have afterwards:

- the same type, or a narrower one of the same family (``INTEGER`` into ``BIGINT``): unchanged;
- a wider one of the same family (``BIGINT`` into ``INTEGER``, ``DECIMAL(18,2)`` into
  ``DECIMAL(10,2)``, ``TIMESTAMP`` into ``DATE``): the column is widened, to the narrowest type
  that holds both (``UTINYINT`` into ``TINYINT`` gives ``SMALLINT``);
- anything else (``INTEGER`` into ``VARCHAR``, ``VARCHAR`` into ``INTEGER``, naive into
  time-zone-aware timestamps): ``None``, and the load is refused naming the column.

Families: signed and unsigned integers, floating point (which also holds integers and decimals),
decimals, date and timestamps of any precision, and lists of any of these. Every other type only
matches itself. A column whose staged values are all NULL (DuckDB type ``"NULL"``) fits anything.
"""

from __future__ import annotations

import re

_SIGNED = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
_UNSIGNED = ("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATS = ("FLOAT", "DOUBLE")
_TIMES = ("DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP", "TIMESTAMP_NS")
#: Decimal digits each integer type needs, to decide whether a DECIMAL can hold it.
_INT_DIGITS = {"TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 39,
               "UTINYINT": 3, "USMALLINT": 5, "UINTEGER": 10, "UBIGINT": 20, "UHUGEINT": 39}
_MAX_DECIMAL_PRECISION = 38
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_NULL = '"NULL"'
#: The type of a column whose values so far were all NULL (Arrow's ``null`` type).
NULL_TYPE = _NULL
_ALIASES = {"NULL": _NULL, "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def normalise(type_name: str) -> str:
    text = " ".join(type_name.strip().upper().split())
    return _ALIASES.get(text, text)


def is_null_type(type_name: str) -> bool:
    return normalise(type_name) == _NULL


def reconcile(existing: str, incoming: str) -> str | None:
    """The type the table column needs to hold both, or ``None`` if no lossless choice exists."""
    old, new = normalise(existing), normalise(incoming)
    if old == new or new == _NULL:
        return existing
    if old == _NULL:
        return incoming
    if old.endswith("[]") and new.endswith("[]"):
        inner = reconcile(old[:-2], new[:-2])
        return None if inner is None else (existing if normalise(inner) == old[:-2] else f"{inner}[]")
    if _holds(old, new):
        return existing
    if _holds(new, old):
        return incoming
    return _join(old, new)


def _join(a: str, b: str) -> str | None:
    """The narrowest type holding both when neither holds the other (signed with unsigned, two decimals)."""
    for signed, unsigned in ((a, b), (b, a)):
        if signed in _SIGNED and unsigned in _UNSIGNED:
            rank = max(_SIGNED.index(signed), _UNSIGNED.index(unsigned) + 1)
            return _SIGNED[rank] if rank < len(_SIGNED) else None
    a_decimal, b_decimal = _decimal(a), _decimal(b)
    if a_decimal is not None and b_decimal is not None:
        scale = max(a_decimal[1], b_decimal[1])
        precision = max(a_decimal[0] - a_decimal[1], b_decimal[0] - b_decimal[1]) + scale
        return f"DECIMAL({precision},{scale})" if precision <= _MAX_DECIMAL_PRECISION else None
    return None


def _holds(wide: str, narrow: str) -> bool:
    """Whether every value of type ``narrow`` is a value of type ``wide``."""
    for family in (_SIGNED, _UNSIGNED, _TIMES):
        if wide in family and narrow in family:
            return family.index(wide) >= family.index(narrow)
    if wide in _SIGNED and narrow in _UNSIGNED:
        return _SIGNED.index(wide) > _UNSIGNED.index(narrow)
    if wide in _FLOATS:
        # DOUBLE takes every number (integers beyond 2**53 round, as they would in any float column).
        return narrow == "FLOAT" or (wide == "DOUBLE" and (narrow in _INT_DIGITS or _decimal(narrow) is not None))
    wide_decimal = _decimal(wide)
    if wide_decimal is not None:
        precision, scale = wide_decimal
        narrow_decimal = _decimal(narrow)
        if narrow_decimal is not None:
            n_precision, n_scale = narrow_decimal
            return scale >= n_scale and precision - scale >= n_precision - n_scale
        if narrow in _INT_DIGITS:
            return precision - scale >= _INT_DIGITS[narrow]
    return False


def _decimal(type_name: str) -> tuple[int, int] | None:
    match = _DECIMAL.match(type_name)
    return (int(match.group(1)), int(match.group(2))) if match else None


__all__ = ["NULL_TYPE", "PORTABLE_TYPES", "is_null_type", "normalise", "reconcile"]


#: Portable type (``dataloader.schema.types``) -> the DuckDB column type a new column gets. Code
#: (drift DDL), docs/schema.md and the contract suite's round trip all read this one table.
PORTABLE_TYPES: dict[str, str] = {
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "decimal": "DECIMAL({p},{s})",
    "string": "VARCHAR",
    "binary": "BLOB",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamp_tz": "TIMESTAMP WITH TIME ZONE",
}
