"""The type mapping between PostgreSQL and Arrow, in both directions.

Reading, each result column gets a :class:`ReadColumn`: the Arrow type users see, the Arrow type
COPY's CSV text is parsed as, and the vectorised post-processing step (if any) that turns the
parsed column into the final one. Most types, timestamptz included, parse straight into their
final type. Writing, each Arrow field maps to the PostgreSQL type a new column is created with,
and an existing column's type is checked for compatibility.

A type without an exact mapping is an error that names the column; nothing is silently turned
into text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from dataloader.errors import ConnectorError

#: Precision and scale used for ``numeric`` without a declared precision (values that do not fit
#: are an error naming the column, never rounded).
UNCONSTRAINED_NUMERIC = (38, 10)
#: Field metadata key recording the PostgreSQL type a string column came from (uuid, json ...).
PG_TYPE_KEY = b"pg_type"

_SCALARS: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "citext": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
}
#: Text-like types whose origin is kept in field metadata so a Postgres destination recreates them.
_TAGGED = {"uuid", "json", "jsonb"}
#: Element types an array column may have (arrays travel as JSON text, see ``encoding``).
_ARRAY_ELEMENTS = {"bool", "int2", "int4", "int8", "text", "varchar", "bpchar", "name", "uuid"}
#: Element types JSON cannot carry exactly (NaN, dates): their arrays travel as JSON arrays of
#: text and are cast to the element type column-wise.
_TEXT_ARRAY_ELEMENTS = {"float4", "float8", "numeric", "date", "timestamp"}


@dataclass(frozen=True)
class PgType:
    """A row of ``pg_type`` (the parts the mapping needs)."""

    oid: int
    name: str
    typtype: str  # b base, d domain, e enum, c composite, r range, p pseudo
    category: str  # A array, ...
    elem: int
    base: int
    base_typmod: int
    display: str


@dataclass
class ReadColumn:
    name: str
    pg_type: str
    arrow_type: pa.DataType
    wire_type: pa.DataType
    #: ``plain`` (Arrow's CSV reader parses the final type); ``cast`` (text cast to the final
    #: type); ``bytea`` (hex text); ``json_list`` (arrays as JSON text); ``json_text_list`` (arrays
    #: as JSON arrays of text, cast to the element type).
    kind: str = "plain"
    metadata: dict[bytes, bytes] = field(default_factory=dict)

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=True, metadata=self.metadata or None)


def _unsupported(column: str, pg_type: str, why: str = "") -> ConnectorError:
    reason = f" ({why})" if why else ""
    return ConnectorError(
        f"column {column!r} has PostgreSQL type {pg_type}, which dataloader cannot map to an exact Arrow type"
        f"{reason}; cast it in a `query`, e.g. SELECT {column}::text AS {column} ...",
        column=column,
        pg_type=pg_type,
    )


def decimal_type(column: str, pg_type: str, precision: int | None, scale: int | None) -> pa.DataType:
    if precision is None or precision <= 0 or precision > 1000:
        precision, scale = UNCONSTRAINED_NUMERIC
    if precision > 76:
        raise _unsupported(column, pg_type, "precision above 76 digits")
    if precision <= 38:
        return pa.decimal128(precision, scale or 0)
    return pa.decimal256(precision, scale or 0)


def numeric_typmod(typmod: int) -> tuple[int | None, int | None]:
    if typmod < 4:
        return None, None
    value = typmod - 4
    scale = value & 0xFFFF
    if scale > 0x7FFF:  # negative scales (PostgreSQL 15+) are stored as 11-bit two's complement
        scale -= 0x10000
    return (value >> 16) & 0xFFFF, scale


def read_column(name: str, pg: PgType, typmod: int, catalog: dict[int, PgType]) -> ReadColumn:
    """How to read one result column of type ``pg`` (with ``typmod``)."""
    display = pg.display
    while pg.typtype == "d":  # a domain reads as its base type
        typmod = pg.base_typmod if pg.base_typmod >= 0 else typmod
        pg = catalog[pg.base]
    if pg.typtype == "e":
        meta = {PG_TYPE_KEY: b"enum"}
        return ReadColumn(name, display, pa.string(), pa.string(), metadata=meta)
    if pg.category == "A" and pg.elem:
        return _array_column(name, display, catalog[pg.elem], typmod, catalog)
    if pg.name == "numeric":
        precision, scale = numeric_typmod(typmod)
        arrow = decimal_type(name, display, precision, scale)
        if pa.types.is_decimal256(arrow):  # Arrow's CSV reader parses decimal128 only
            return ReadColumn(name, display, arrow, pa.string(), kind="cast")
        return ReadColumn(name, display, arrow, arrow)
    if pg.name == "timestamptz":
        # The session's TimeZone is UTC, so COPY prints ``2024-01-01 12:00:00.123456+00``, which
        # Arrow's CSV reader parses straight into the final type (no SQL rewrite, no cast).
        utc = pa.timestamp("us", tz="UTC")
        return ReadColumn(name, display, utc, utc)
    if pg.name == "bytea":
        return ReadColumn(name, display, pa.binary(), pa.string(), kind="bytea")
    arrow = _SCALARS.get(pg.name)
    if arrow is None or pg.typtype not in ("b", "d"):
        raise _unsupported(name, display)
    meta = {PG_TYPE_KEY: pg.name.encode()} if pg.name in _TAGGED else {}
    return ReadColumn(name, display, arrow, arrow, metadata=meta)


def _array_column(name: str, display: str, element: PgType, typmod: int, catalog: dict[int, PgType]) -> ReadColumn:
    while element.typtype == "d":
        element = catalog[element.base]
    if element.typtype == "e":
        return ReadColumn(name, display, pa.list_(pa.string()), pa.string(), kind="json_list")
    if element.name in _ARRAY_ELEMENTS:
        return ReadColumn(name, display, pa.list_(_SCALARS[element.name]), pa.string(), kind="json_list")
    if element.name in _TEXT_ARRAY_ELEMENTS:
        if element.name == "numeric":
            value_type = decimal_type(name, display, *numeric_typmod(typmod))
        else:
            value_type = _SCALARS[element.name]
        return ReadColumn(name, display, pa.list_(value_type), pa.string(), kind="json_text_list")
    raise _unsupported(name, display, f"arrays of {element.display} are not supported")


# -- writing -------------------------------------------------------------------------------


def storage_type(arrow_type: pa.DataType) -> pa.DataType:
    """The plain Arrow type behind dictionaries and extension types."""
    while True:
        if isinstance(arrow_type, pa.ExtensionType):
            arrow_type = arrow_type.storage_type
        elif pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        else:
            return arrow_type


def _extension_name(arrow_type: pa.DataType) -> str:
    return getattr(arrow_type, "extension_name", "") if isinstance(arrow_type, pa.ExtensionType) else ""


def pg_type_for(arrow_field: pa.Field) -> str:
    """The PostgreSQL type a new column for ``arrow_field`` is created with."""
    extension = _extension_name(arrow_field.type)
    if extension in ("arrow.uuid",):
        return "uuid"
    if extension in ("arrow.json",):
        return "jsonb"
    tag = (arrow_field.metadata or {}).get(PG_TYPE_KEY, b"").decode()
    t = storage_type(arrow_field.type)
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and tag in ("uuid", "json", "jsonb"):
        return tag
    scalar = _scalar_pg_type(t)
    if scalar is not None:
        return scalar
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        element = storage_type(t.value_type)
        inner = _scalar_pg_type(element)
        if inner is None or inner in ("bytea",):
            raise ConnectorError(
                f"column {arrow_field.name!r}: cannot store a list of {element} in PostgreSQL "
                "(supported: lists of numbers, booleans, text, dates and timestamps)",
                column=arrow_field.name,
                arrow_type=str(t),
            )
        return f"{inner}[]"
    raise ConnectorError(
        f"column {arrow_field.name!r} has Arrow type {t}, which the postgres connector cannot store; "
        "cast or drop it with a transform",
        column=arrow_field.name,
        arrow_type=str(t),
    )


def _scalar_pg_type(t: pa.DataType) -> str | None:
    if pa.types.is_null(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t):
        return "text"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        if t.precision > 1000:
            return None
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    return None


#: PostgreSQL type categories (``pg_type.typcategory``) an Arrow type family may be written into.
_COMPATIBLE: dict[str, set[str]] = {
    "bool": {"B"},
    "int": {"N"},
    "float": {"N"},
    "decimal": {"N"},
    "string": {"S", "U", "E"},  # text-like; user types (uuid, json, jsonb) and enums parse from text
    "binary": {"U"},  # bytea is category U
    "date": {"D"},
    "time": {"D"},
    "timestamp": {"D"},
    "list": {"A"},
}


def arrow_family(t: pa.DataType) -> str:
    t = storage_type(t)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    if pa.types.is_null(t):
        return "null"
    return "string"


def check_compatible(arrow_field: pa.Field, pg_name: str, pg_category: str, pg_display: str, table: str) -> None:
    """Refuse writing ``arrow_field`` into an existing column of another kind, naming the column."""
    family = arrow_family(arrow_field.type)
    if family == "null":
        return
    allowed = _COMPATIBLE.get(family, set())
    ok = pg_category in allowed
    if family == "binary":
        ok = pg_name == "bytea"
    elif family == "string" and pg_category == "U":
        ok = pg_name in ("uuid", "json", "jsonb", "citext", "xml")
    elif family == "time":
        ok = pg_name in ("time", "timetz")
    elif family == "date":
        ok = pg_name in ("date", "timestamp", "timestamptz")
    elif family == "timestamp":
        ok = pg_name in ("timestamp", "timestamptz")
    if not ok:
        raise ConnectorError(
            f"column {arrow_field.name!r} of {table} is {pg_display} but the incoming data is "
            f"{storage_type(arrow_field.type)}; refusing an incompatible type change (cast the column "
            "with a transform, or write to a new table)",
            column=arrow_field.name,
            table=table,
            existing_type=pg_display,
            incoming_type=str(arrow_field.type),
        )


#: Portable type (``dataloader.schema.types``) -> the PostgreSQL column type a new or widened column
#: gets: the one table the schema gate's DDL, docs/schema.md and the tests read.
PORTABLE_TYPES: dict[str, str] = {
    "bool": "boolean",
    "int8": "smallint",
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "float32": "real",
    "float64": "double precision",
    "decimal": "numeric({p},{s})",
    "string": "text",
    "binary": "bytea",
    "date": "date",
    "time": "time",
    "timestamp": "timestamp",
    "timestamp_tz": "timestamptz",
}
