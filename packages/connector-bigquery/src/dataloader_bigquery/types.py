"""Arrow ↔ BigQuery types, as data.

Writing: each Arrow column becomes a BigQuery field (:data:`WRITE_TYPES`, by Arrow type id) and,
where BigQuery's Parquet loader needs it, is cast first (:func:`load_type`). Reading: each
BigQuery type has one Arrow type (:data:`READ_TYPES`); the Storage Read API returns these itself.

==================  =====================  ======================================
Arrow               BigQuery               read back as
==================  =====================  ======================================
bool                BOOL                   bool
int8 … int64        INT64                  int64
uint8 … uint32      INT64                  int64
float16 … float64   FLOAT64                float64
decimal, s ≤ 9,     NUMERIC                decimal128(38, 9)
 p - s ≤ 29
other decimal,      BIGNUMERIC             decimal256(76, 38)
 s ≤ 38, p - s ≤ 38
string              STRING                 string
binary              BYTES                  binary
date                DATE                   date32
time                TIME                   time64[us]
timestamp           DATETIME               timestamp[us]
timestamp with tz   TIMESTAMP              timestamp[us, tz=UTC]
list<x>             ARRAY<x> (REPEATED)    list<x>
struct              STRUCT (RECORD)        struct
JSON (extension)    JSON                   string
==================  =====================  ======================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataloader.errors import ConnectorError

if TYPE_CHECKING:
    import pyarrow as pa

#: NUMERIC holds 29 digits before and 9 after the point; BIGNUMERIC 38 and 38.
NUMERIC = (29, 9)
BIGNUMERIC = (38, 38)

#: BigQuery type -> Arrow type: the pyarrow factory and its arguments.
READ_TYPES: dict[str, tuple[str, tuple[Any, ...]]] = {
    "INT64": ("int64", ()),
    "INTEGER": ("int64", ()),
    "FLOAT64": ("float64", ()),
    "FLOAT": ("float64", ()),
    "BOOL": ("bool_", ()),
    "BOOLEAN": ("bool_", ()),
    "NUMERIC": ("decimal128", (38, 9)),
    "BIGNUMERIC": ("decimal256", (76, 38)),
    "STRING": ("string", ()),
    "JSON": ("string", ()),
    "GEOGRAPHY": ("string", ()),
    "BYTES": ("binary", ()),
    "DATE": ("date32", ()),
    "DATETIME": ("timestamp", ("us",)),
    "TIME": ("time64", ("us",)),
    "TIMESTAMP": ("timestamp", ("us", "UTC")),
}

#: Checks on an Arrow type (in order) -> BigQuery type; decimals and nesting are handled apart.
WRITE_TYPES: tuple[tuple[str, str], ...] = (
    ("is_boolean", "BOOL"),
    ("is_signed_integer", "INT64"),
    ("is_floating", "FLOAT64"),
    ("is_string", "STRING"),
    ("is_large_string", "STRING"),
    ("is_binary", "BYTES"),
    ("is_large_binary", "BYTES"),
    ("is_fixed_size_binary", "BYTES"),
    ("is_date", "DATE"),
    ("is_time", "TIME"),
    ("is_null", "STRING"),
)


def _decimal_type(type_: pa.DataType) -> str:
    integer_digits = type_.precision - type_.scale
    if type_.scale <= NUMERIC[1] and integer_digits <= NUMERIC[0]:
        return "NUMERIC"
    if type_.scale <= BIGNUMERIC[1] and integer_digits <= BIGNUMERIC[0]:
        return "BIGNUMERIC"
    raise ConnectorError(
        f"decimal({type_.precision},{type_.scale}) does not fit BigQuery's BIGNUMERIC "
        "(38 digits before and 38 after the point); cast the column first"
    )


def bigquery_type(type_: pa.DataType, column: str) -> tuple[str, str, list[Any]]:
    """``(BigQuery type, mode, sub-fields)`` for an Arrow type (mode REPEATED for lists)."""
    import pyarrow as pa

    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        inner, mode, fields = bigquery_type(type_.value_type, column)
        if mode == "REPEATED":
            raise ConnectorError(f"column {column!r}: BigQuery has no array of arrays; wrap the inner list in a struct")
        return inner, "REPEATED", fields
    if pa.types.is_struct(type_):
        return "RECORD", "NULLABLE", [schema_field(type_.field(i), column) for i in range(type_.num_fields)]
    if pa.types.is_decimal(type_):
        return _decimal_type(type_), "NULLABLE", []
    if pa.types.is_timestamp(type_):
        return ("TIMESTAMP" if type_.tz else "DATETIME"), "NULLABLE", []
    if pa.types.is_unsigned_integer(type_) and type_.bit_width < 64:
        return "INT64", "NULLABLE", []
    if getattr(type_, "extension_name", None) == "arrow.json":
        return "JSON", "NULLABLE", []
    for check, name in WRITE_TYPES:
        if getattr(pa.types, check)(type_):
            return name, "NULLABLE", []
    raise ConnectorError(f"column {column!r}: BigQuery has no type for Arrow {type_}; cast it first (e.g. to string)")


def schema_field(field: pa.Field, parent: str | None = None) -> Any:
    from google.cloud.bigquery import SchemaField

    name = f"{parent}.{field.name}" if parent else field.name
    type_name, mode, fields = bigquery_type(field.type, name)
    return SchemaField(field.name, type_name, mode=mode, fields=fields)


def schema_fields(schema: pa.Schema) -> list[Any]:
    return [schema_field(field) for field in schema]


def load_type(type_: pa.DataType) -> pa.DataType:
    """The Arrow type written to the staging Parquet file for ``type_``."""
    import pyarrow as pa

    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return pa.list_(load_type(type_.value_type))
    if pa.types.is_struct(type_):
        return pa.struct([pa.field(f.name, load_type(f.type)) for f in type_])
    if pa.types.is_integer(type_):
        return pa.int64()
    if pa.types.is_floating(type_):
        return pa.float64()
    if pa.types.is_timestamp(type_):
        return pa.timestamp("us", tz="UTC" if type_.tz else None)
    if pa.types.is_time(type_):
        return pa.time64("us")
    if pa.types.is_date(type_):
        return pa.date32()
    if pa.types.is_large_string(type_) or pa.types.is_null(type_):
        return pa.string()
    if pa.types.is_large_binary(type_) or pa.types.is_fixed_size_binary(type_):
        return pa.binary()
    if getattr(type_, "extension_name", None) == "arrow.json":
        return pa.string()
    return type_


def load_schema(schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(f.name, load_type(f.type)) for f in schema])


def arrow_type(field: Any) -> pa.DataType:
    """The Arrow type a BigQuery ``SchemaField`` reads back as."""
    import pyarrow as pa

    if field.field_type in ("RECORD", "STRUCT"):
        inner: pa.DataType = pa.struct([pa.field(f.name, arrow_type(f)) for f in field.fields])
    else:
        known = READ_TYPES.get(field.field_type)
        if known is None:
            raise ConnectorError(f"column {field.name!r}: BigQuery type {field.field_type} cannot be read")
        factory, arguments = known
        inner = getattr(pa, factory)(*arguments)
    return pa.list_(inner) if field.mode == "REPEATED" else inner


def arrow_schema(fields: list[Any]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(f.name, arrow_type(f)) for f in fields])


__all__ = ["READ_TYPES", "WRITE_TYPES", "arrow_schema", "arrow_type", "bigquery_type", "load_schema", "schema_fields"]
