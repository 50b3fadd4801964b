"""Every supported PostgreSQL type reads into its exact Arrow type and writes back unchanged."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
from dataloader.batch import Batch
from dataloader.errors import ConnectorError
from dataloader.state import State

UTC = dt.timezone.utc
ODD_TEXT = ["", None, "ünïcødé ✓ 日本", "tab\there", "new\nline\r\nand \"quotes\", commas", "back\\slash \\N"]

CREATE_ALL_TYPES = """
CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE {table} (
    id serial PRIMARY KEY,
    small smallint, i integer, big bigint,
    money_like numeric(12, 2), huge numeric(38, 18), wide numeric(50, 25), loose numeric,
    r real, d double precision, flag boolean,
    t text, vc varchar(20), ch char(4),
    day date, clock time, ts timestamp, tstz timestamptz,
    u uuid, j json, jb jsonb, raw bytea,
    ints integer[], texts text[], feeling {mood},
    floats float8[], amounts numeric(6, 2)[], days date[], moods {mood}[]
);
"""


def _create(pg, table: str) -> None:
    mood = f"{table}_mood"
    with pg.cursor() as cur:
        cur.execute(CREATE_ALL_TYPES.format(table=table, mood=mood))


def _insert(pg, table: str, rows: list[dict]) -> None:
    with pg.cursor() as cur:
        for row in rows:
            columns = ", ".join(row)
            marks = ", ".join(["%s"] * len(row))
            cur.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


def _read_all(connector, **keys) -> pa.Table:
    source = connector(**keys)
    batches = [b.to_arrow() for b in source.read_batches(State())]
    # get_schema() says which columns are NOT NULL; the batches' fields are all nullable.
    schema = pa.schema([field.with_nullable(True) for field in source.get_schema()])
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


def test_every_supported_type_reads_into_its_exact_arrow_type(pg, connector, table_name):
    _create(pg, table_name)
    schema = connector(table=table_name).get_schema()
    expected = {
        "id": pa.int32(),
        "small": pa.int16(),
        "i": pa.int32(),
        "big": pa.int64(),
        "money_like": pa.decimal128(12, 2),
        "huge": pa.decimal128(38, 18),
        "wide": pa.decimal256(50, 25),
        "loose": pa.decimal128(38, 10),
        "r": pa.float32(),
        "d": pa.float64(),
        "flag": pa.bool_(),
        "t": pa.string(),
        "vc": pa.string(),
        "ch": pa.string(),
        "day": pa.date32(),
        "clock": pa.time64("us"),
        "ts": pa.timestamp("us"),
        "tstz": pa.timestamp("us", tz="UTC"),
        "u": pa.string(),
        "j": pa.string(),
        "jb": pa.string(),
        "raw": pa.binary(),
        "ints": pa.list_(pa.int32()),
        "texts": pa.list_(pa.string()),
        "feeling": pa.string(),
        "floats": pa.list_(pa.float64()),
        "amounts": pa.list_(pa.decimal128(6, 2)),
        "days": pa.list_(pa.date32()),
        "moods": pa.list_(pa.string()),
    }
    assert {f.name: f.type for f in schema} == expected
    assert schema.field("u").metadata == {b"pg_type": b"uuid"}
    assert schema.field("jb").metadata == {b"pg_type": b"jsonb"}
    assert schema.field("feeling").metadata == {b"pg_type": b"enum"}


def test_values_round_trip_exactly_including_nulls_nan_infinities_and_odd_text(pg, connector, table_name):
    _create(pg, table_name)
    some_uuid = uuid.uuid4()
    rows = [
        dict(
            small=-32768, i=2147483647, big=-9223372036854775808,
            money_like=Decimal("-9999999999.99"), huge=Decimal("99999999999999999999.999999999999999999"),
            wide=Decimal("-1234567890123456789012345.1234567890123456789012345"),
            loose=Decimal("123456789012345678.0123456789"),
            r=float("nan"), d=float("inf"), flag=True,
            t=ODD_TEXT[0], vc="", ch="ab",
            day=dt.date(1, 1, 1), clock=dt.time(23, 59, 59, 999999),
            ts=dt.datetime(1970, 1, 1, 0, 0, 0, 1),
            tstz=dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
            u=str(some_uuid), j='{"b": 1,  "a": [1, 2]}', jb='{"k": "v"}', raw=b"\x00\x01\xff\\",
            ints=[1, None, -3], texts=["a,b", None, 'quote"d', "", "NULL"], feeling="happy",
            floats=[float("nan"), float("-inf"), 0.1, None], amounts=[Decimal("1.50"), None],
            days=[dt.date(2024, 2, 29)], moods="{sad,ok}",
        ),
        dict(
            small=None, i=None, big=None, money_like=None, huge=None, wide=None, loose=None,
            r=float("-inf"), d=float("nan"), flag=False,
            t=ODD_TEXT[1], vc=None, ch=None, day=dt.date(9999, 12, 31), clock=dt.time(0, 0),
            ts=None, tstz=None, u=None, j=None, jb=None, raw=b"", ints=[], texts=None, feeling=None,
        ),
        *[dict(t=text, d=1.0000000000000002, r=0.1) for text in ODD_TEXT[2:]],
    ]
    for row in rows:
        row["ints"] = row.get("ints")
    _insert(pg, table_name, rows)
    table = _read_all(connector, table=table_name).sort_by("id")
    got = table.to_pylist()
    first, second = got[0], got[1]
    assert first["small"] == -32768 and first["i"] == 2147483647 and first["big"] == -9223372036854775808
    assert first["money_like"] == Decimal("-9999999999.99")
    assert first["huge"] == Decimal("99999999999999999999.999999999999999999")
    assert first["wide"] == Decimal("-1234567890123456789012345.1234567890123456789012345")
    assert first["loose"] == Decimal("123456789012345678.0123456789")
    assert math.isnan(first["r"]) and first["d"] == math.inf and first["flag"] is True
    assert first["t"] == "" and first["vc"] == "" and first["ch"] == "ab  "
    assert first["day"] == dt.date(1, 1, 1) and first["clock"] == dt.time(23, 59, 59, 999999)
    assert first["ts"] == dt.datetime(1970, 1, 1, 0, 0, 0, 1)
    assert first["tstz"] == dt.datetime(2024, 3, 31, 8, 30, tzinfo=UTC)
    assert first["u"] == str(some_uuid)
    assert first["j"] == '{"b": 1,  "a": [1, 2]}' and first["jb"] == '{"k": "v"}'
    assert first["raw"] == b"\x00\x01\xff\\"
    assert first["ints"] == [1, None, -3] and first["texts"] == ["a,b", None, 'quote"d', "", "NULL"]
    assert first["feeling"] == "happy"
    assert math.isnan(first["floats"][0]) and first["floats"][1:] == [-math.inf, 0.1, None]
    assert first["amounts"] == [Decimal("1.50"), None] and first["days"] == [dt.date(2024, 2, 29)]
    assert first["moods"] == ["sad", "ok"]
    assert second["r"] == -math.inf and math.isnan(second["d"]) and second["flag"] is False
    assert second["t"] is None and second["vc"] is None and second["raw"] == b"" and second["ints"] == []
    assert all(second[k] is None for k in ("small", "i", "big", "money_like", "huge", "wide", "loose", "tstz", "u"))
    assert second["day"] == dt.date(9999, 12, 31)
    assert [row["t"] for row in got[2:]] == ODD_TEXT[2:]
    assert got[2]["d"] == 1.0000000000000002 and got[2]["r"] == pytest.approx(0.1)

    # ... and back: written to a new table by the destination, read again, identical.
    destination = connector(role="destination", table=f"{table_name}_copy")
    destination.begin(table.schema, "append", State())
    for batch in table.to_batches(max_chunksize=3):
        destination.write_batch(Batch.from_arrow(batch), State())
    destination.commit(State())
    copied = _read_all(connector, table=f"{table_name}_copy").sort_by("id")
    assert copied.schema.equals(table.schema, check_metadata=False)
    assert _comparable(copied) == _comparable(table)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
            "AND column_name IN ('u', 'jb', 'raw', 'ints', 'tstz', 'wide')",
            (f"{table_name}_copy",),
        )
        created = dict(cur.fetchall())
    assert created == {
        "u": "uuid", "jb": "jsonb", "raw": "bytea", "ints": "ARRAY",
        "tstz": "timestamp with time zone", "wide": "numeric",
    }


def _comparable(table: pa.Table) -> list[dict]:
    """Rows with NaN replaced by a marker (NaN != NaN) so tables compare by value."""

    def marked(value):
        if isinstance(value, float) and math.isnan(value):
            return "NaN"
        return [marked(v) for v in value] if isinstance(value, list) else value

    return [{key: marked(value) for key, value in row.items()} for row in table.to_pylist()]


def test_numeric_nan_is_an_error_naming_the_column(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, amount numeric(10, 2))")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 'NaN')")
    with pytest.raises(ConnectorError, match="column 'amount'"):
        list(connector(table=table_name).read_batches(State()))


def test_value_with_more_digits_than_unconstrained_numeric_maps_to_is_an_error(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (x numeric)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1.00000000001)")
    with pytest.raises(ConnectorError, match="column 'x'"):
        list(connector(table=table_name).read_batches(State()))


def test_type_without_exact_mapping_is_an_error_naming_the_column(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, span interval)")
    with pytest.raises(ConnectorError, match=r"column 'span' has PostgreSQL type interval"):
        list(connector(table=table_name).read_batches(State()))


def test_query_source_keeps_numeric_precision_and_types(connector):
    source = connector(query="SELECT 1.5::numeric(6, 3) AS n, now() AS at, 'x'::text AS s")
    table = pa.Table.from_batches(list(b.to_arrow() for b in source.read_batches(State())))
    assert table.schema.field("n").type == pa.decimal128(6, 3)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.column("n").to_pylist() == [Decimal("1.500")]


def test_timezone_aware_arrow_timestamps_are_stored_as_the_same_instant(pg, connector, table_name):
    paris = pa.array([dt.datetime(2024, 7, 1, 12, 0)], pa.timestamp("us", tz="Europe/Paris"))
    # 2024-07-01 12:00 UTC shown in Paris time is 14:00; the stored instant must be 12:00 UTC.
    batch = pa.RecordBatch.from_arrays([paris], names=["at"])
    destination = connector(role="destination", table=table_name)
    destination.begin(batch.schema, "append", State())
    destination.write_batch(Batch.from_arrow(batch), State())
    destination.commit(State())
    with pg.cursor() as cur:
        cur.execute(f"SELECT at AT TIME ZONE 'UTC' FROM {table_name}")
        assert cur.fetchone()[0] == dt.datetime(2024, 7, 1, 12, 0)


def test_timestamptz_parses_straight_into_utc_instants_at_any_precision(pg, connector, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, at timestamptz)")
        cur.execute(
            f"INSERT INTO {table_name} VALUES (1, '2024-01-01 12:00:00+00'), (2, '2024-01-01 12:00:00.5+00'), "
            "(3, '2024-01-01 12:00:00.123456+00'), (4, '2024-03-31 01:30:00.000001-07'), (5, NULL), "
            "(6, '0999-06-01 00:00:00+00'), (7, '0001-01-01 00:00:00+00'), (8, '1969-12-31 23:59:59.999999+00')"
        )
    table = _read_all(connector, table=table_name).sort_by("id")
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.column("at").to_pylist() == [
        dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 12, 0, 0, 500000, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        dt.datetime(2024, 3, 31, 8, 30, 0, 1, tzinfo=UTC),
        None,
        dt.datetime(999, 6, 1, tzinfo=UTC),
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]


@pytest.mark.parametrize("value", ["infinity", "-infinity", "0044-03-15 00:00:00+00 BC", "10000-01-01 00:00:00+00"])
def test_timestamptz_outside_arrow_range_is_an_error_naming_the_column(pg, connector, table_name, value):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, at timestamptz)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, '2024-01-01 00:00:00+00'), (2, %s)", (value,))
    with pytest.raises(ConnectorError, match=r"column 'at' \(timestamp with time zone\) holds a value") as caught:
        list(connector(table=table_name).read_batches(State()))
    assert caught.value.context["column"] == "at"
