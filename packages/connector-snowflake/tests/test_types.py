"""The type table, row by row, through a real load and read on the emulator; and the docs print it."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import query
from dataloader_snowflake.types import METADATA_KEY, TYPE_TABLE, markdown_table, read_field, snowflake_type
from target import read_table, write_rows

DOCS = Path(__file__).resolve().parents[3] / "docs" / "connectors" / "snowflake.md"

UTC = dt.timezone.utc
#: One sample per row of the type table: (column, values, the Arrow type read back, values read back).
SAMPLES: dict[str, tuple[pa.Array, pa.DataType, list]] = {
    "bool": (pa.array([True, None]), pa.bool_(), [True, None]),
    "int8, int16, int32, int64, uint8 … uint64": (
        pa.array([0, 2**32 - 1, None], pa.uint32()), pa.int64(), [0, 2**32 - 1, None]),
    "float16, float32, float64": (pa.array([0.5, None], pa.float32()), pa.float64(), [0.5, None]),
    "decimal128(p,s), decimal256(p ≤ 38,s)": (
        pa.array([decimal.Decimal("12345678901234567890123456.0123456789"), None], pa.decimal128(38, 10)),
        pa.decimal128(38, 10), [decimal.Decimal("12345678901234567890123456.0123456789"), None]),
    "string, large_string": (pa.array(["é ✓", None], pa.large_string()), pa.string(), ["é ✓", None]),
    "binary, large_binary, fixed_size_binary": (pa.array([b"\x00\xff", None], pa.binary(2)), pa.binary(), [b"\x00\xff", None]),
    "date32, date64": (pa.array([dt.date(1, 1, 1), None], pa.date32()), pa.date32(), [dt.date(1, 1, 1), None]),
    "time32, time64": (pa.array([dt.time(23, 59, 59, 999999), None], pa.time64("us")), pa.time64("us"),
                       [dt.time(23, 59, 59, 999999), None]),
    "timestamp(unit) without a time zone": (
        pa.array([dt.datetime(1900, 1, 1, 0, 0, 0, 1), None], pa.timestamp("us")), pa.timestamp("us"),
        [dt.datetime(1900, 1, 1, 0, 0, 0, 1), None]),
    "timestamp(unit, tz)": (
        pa.array([dt.datetime(2024, 6, 1, 12, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")), pa.timestamp("us", tz="UTC"),
        [dt.datetime(2024, 6, 1, 12, tzinfo=UTC), None]),
    "list, large_list, fixed_size_list": (pa.array([[1, 2], [], None], pa.list_(pa.int64())), pa.string(), [[1, 2], [], None]),
    "struct, map": (pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())])), pa.string(), [{"a": 1}, None]),
    "null (a column with no value yet)": (pa.nulls(2), pa.string(), [None, None]),
    "string listed in variant_columns (JSON text)": (
        pa.array(['{"k": [1, "two", null]}', None]), pa.string(), [{"k": [1, "two", None]}, None]),
}


def test_every_rule_has_a_sample():
    assert sorted(SAMPLES) == sorted(rule.arrow for rule in TYPE_TABLE)


def test_docs_print_the_type_table():
    assert markdown_table() in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize("rule", TYPE_TABLE, ids=lambda rule: rule.snowflake)
def test_type_rule_round_trips(rule, section, unique, sf):
    values, read_type, expected = SAMPLES[rule.arrow]
    table = unique("types")
    keys = section(table=f'"{table}"', variant_columns=["c"] if "variant" in rule.arrow else [])
    data = pa.table({"id": pa.array(range(len(values)), pa.int64()), "c": values})
    write_rows(keys, data)
    declared = query(sf, "SELECT DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = ? AND COLUMN_NAME = 'c'", (table,))
    # The emulator reports ARRAY and OBJECT columns as VARIANT.
    accepted = {rule.snowflake.split("(")[0], "TEXT" if rule.snowflake == "VARCHAR" else "", "VARIANT" if rule.snowflake in ("ARRAY", "OBJECT") else ""}
    assert declared[0][0] in accepted
    got = read_table(keys).sort_by("id")
    field = got.schema.field("c")
    column = got.column("c")
    if pa.types.is_timestamp(read_type) or pa.types.is_time(read_type):
        # The emulator describes every TIME and TIMESTAMP column with scale 9, so it reads as ns.
        assert field.type in (read_type, pa.timestamp("ns", tz=getattr(read_type, "tz", None)) if pa.types.is_timestamp(read_type) else pa.time64("ns"))
        column = column.cast(read_type)
    else:
        assert field.type == read_type
    values = column.to_pylist()
    if field.metadata and field.metadata.get(METADATA_KEY) in (b"VARIANT", b"OBJECT", b"ARRAY"):
        values = [None if v is None else json.loads(v) for v in values]
    assert values == expected


def test_decimal_beyond_38_digits_is_refused_before_anything_is_written():
    with pytest.raises(ValueError, match="at most 38 digits"):
        snowflake_type(pa.decimal256(40, 2))


@pytest.mark.parametrize(
    ("kind", "precision", "scale", "expected"),
    [
        ("FIXED", 38, 0, pa.decimal128(38, 0)),
        ("FIXED", 19, 0, pa.int64()),
        ("FIXED", 10, 2, pa.decimal128(10, 2)),
        ("TIMESTAMP_NTZ", 0, 9, pa.timestamp("ns")),
        ("TIMESTAMP_LTZ", 0, 3, pa.timestamp("ms", tz="UTC")),
        ("TIME", 0, 9, pa.time64("ns")),
    ],
)
def test_read_types_follow_precision_and_scale(kind, precision, scale, expected):
    assert read_field("c", kind, precision, scale).type == expected
