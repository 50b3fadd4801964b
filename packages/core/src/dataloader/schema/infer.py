"""Infer a ``schema:`` block from a sample of a source's rows.

Each column's type is the lattice join (``types.widen``) of what its batches hold; a text column
whose every sampled value reads as one narrower type (integers, decimals, booleans, dates) gets
that type, but only without losing anything: an integer outside int64 makes the column a
``decimal(38,0)``, or ``string`` beyond 38 digits, never a float.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from dataloader.schema import types as ptypes

_INT = re.compile(r"^[+-]?\d+$")
_DEC = re.compile(r"^[+-]?\d*\.\d+$")
_INT64 = (-(2**63), 2**63 - 1)


def infer(batches: Iterable[Any], sample: int) -> list[dict[str, Any]]:
    """``[{name, type, nullable}]`` from the first ``sample`` rows of ``batches`` (Arrow record batches)."""
    order: list[str] = []
    kinds: dict[str, str | None] = {}
    nulls: dict[str, bool] = {}
    texts: dict[str, list[str]] = {}
    seen = 0
    for data in batches:
        if seen >= sample:
            break
        data = data.slice(0, sample - seen)
        seen += data.num_rows
        for field, column in zip(data.schema, data.columns, strict=True):
            if field.name not in kinds:
                order.append(field.name)
                kinds[field.name] = "null"
            nulls[field.name] = nulls.get(field.name, False) or column.null_count > 0
            portable = ptypes.from_arrow(field.type)
            if portable == "string":
                texts.setdefault(field.name, []).extend(v for v in column.to_pylist() if v is not None)
            current = kinds[field.name]
            kinds[field.name] = None if current is None else (ptypes.widen(current, portable) or "string")
    result = []
    for name in order:
        kind = kinds[name] or "string"
        if kind == "string" and name in texts:
            kind = _refine(texts[name])
        if kind == "null":
            kind = "string"
        result.append({"name": name, "type": kind, "nullable": nulls[name]})
    return result


def _refine(values: list[str]) -> str:
    """The narrowest type every text value reads as, without losing a digit."""
    if not values:
        return "string"
    if all(_INT.match(v.strip()) for v in values):
        numbers = [int(v) for v in values]
        if all(_INT64[0] <= n <= _INT64[1] for n in numbers):
            return "int64"
        digits = max(len(str(abs(n))) for n in numbers)
        return "decimal(38,0)" if digits <= 38 else "string"
    if all(_INT.match(v.strip()) or _DEC.match(v.strip()) for v in values):
        scale = max((len(v.strip().split(".")[1]) if "." in v else 0) for v in values)
        whole = max(len(v.strip().lstrip("+-").split(".")[0]) for v in values)
        return f"decimal({whole + scale},{scale})" if whole + scale <= 38 else "string"
    if all(v.strip().lower() in ("true", "false") for v in values):
        return "bool"
    try:
        for v in values:
            dt.date.fromisoformat(v.strip())
        return "date"
    except ValueError:
        return "string"


__all__ = ["infer"]
