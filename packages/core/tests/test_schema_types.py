"""Portable types, the widening lattice, the diff, and the schema: section in the JSON Schema."""

from __future__ import annotations

import jsonschema
import pyarrow as pa
import pytest
from dataloader.errors import RecipeError
from dataloader.plugins import get_registry
from dataloader.schema import types as ptypes
from dataloader.schema.drift import diff
from dataloader.schema_export import recipe_schema


@pytest.mark.parametrize(
    ("a", "b", "joined"),
    [
        ("int8", "int32", "int32"),
        ("int32", "int64", "int64"),
        ("int32", "float64", "float64"),
        ("int64", "float64", None),  # would lose digits past 2**53
        ("float32", "float64", "float64"),
        ("int64", "decimal(10,2)", "decimal(21,2)"),
        ("decimal(10,2)", "decimal(12,4)", "decimal(12,4)"),
        ("decimal(38,0)", "decimal(38,10)", None),
        ("date", "timestamp", "timestamp"),
        ("int32", "string", None),
        ("timestamp", "timestamp_tz", None),
        ("null", "bool", "bool"),
    ],
)
def test_the_lattice_widens_and_never_narrows(a: str, b: str, joined: str | None) -> None:
    assert ptypes.widen(a, b) == joined and ptypes.widen(b, a) == joined
    if joined is not None:
        assert ptypes.holds(joined, a) and ptypes.holds(joined, b)


@pytest.mark.parametrize("name", [*[n for n in ptypes.SCALARS], "decimal(12,3)"])
def test_every_portable_type_round_trips_through_arrow(name: str) -> None:
    assert ptypes.from_arrow(ptypes.to_arrow(name)) == name


def test_unsigned_integers_map_to_a_type_that_holds_them() -> None:
    assert [ptypes.from_arrow(t) for t in (pa.uint8(), pa.uint32(), pa.uint64())] == ["int16", "int64", "decimal(20,0)"]


def test_unknown_and_out_of_range_types_are_refused() -> None:
    with pytest.raises(RecipeError, match="unknown type 'integr'"):
        ptypes.parse("integr")
    with pytest.raises(RecipeError, match="precision"):
        ptypes.parse("decimal(39,0)")
    assert ptypes.parse(" Decimal( 10 , 2 ) ") == "decimal(10,2)" and ptypes.parse("bigint") == "int64"


def test_diff_reports_each_kind_of_change() -> None:
    old = [{"name": "a", "type": "int32", "nullable": True}, {"name": "b", "type": "string", "nullable": True}]
    new = [{"name": "a", "type": "int64", "nullable": False}, {"name": "c", "type": "date", "nullable": True}]
    kinds = sorted((c.kind, c.column) for c in diff(old, new))
    assert kinds == [("added", "c"), ("nullability_changed", "a"), ("removed", "b"), ("type_changed", "a")]


def test_the_json_schema_describes_the_schema_section() -> None:
    document = recipe_schema(get_registry())
    section = {**document["properties"]["schema"], "$defs": document["$defs"]}
    good = {"mode": "strict", "columns": [{"name": "id", "type": "int64"}], "evolution": {"mode": "auto"}}
    jsonschema.validate(good, section)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"evolution": {"mode": "sometimes"}}, section)
