"""What only a real Snowflake account can show; skipped unless DATALOADER_TEST_SNOWFLAKE_* is set.

    DATALOADER_TEST_SNOWFLAKE_ACCOUNT, _USER, and _PASSWORD or _PRIVATE_KEY_FILE (+ _PRIVATE_KEY_PASSPHRASE),
    optionally _ROLE, _WAREHOUSE, _DATABASE (default: a database the role may create schemas in)

Each session creates its own schema ``DL_TEST_<random>`` and drops it at the end.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest
from conftest import query, raw_connect, real_account_keys
from dataloader.batch import Batch
from dataloader.errors import ConnectorError
from dataloader.state import State
from dataloader.testing import ConnectorContractSuite
from target import SnowflakeTarget, connector, read_table

pytestmark = pytest.mark.real_account

_KEYS = ("account", "user", "password", "private_key_file", "private_key_passphrase", "role", "warehouse", "database", "authenticator")


@pytest.fixture(scope="module")
def account() -> Iterator[dict[str, Any]]:
    keys = real_account_keys()
    if keys is None:
        pytest.skip("needs a real Snowflake account: set DATALOADER_TEST_SNOWFLAKE_ACCOUNT, _USER, _PASSWORD ...")
    keys = {k: v for k, v in keys.items() if k in _KEYS}
    schema = f"DL_TEST_{uuid.uuid4().hex[:8].upper()}"
    conn = raw_connect({k: v for k, v in keys.items() if k not in ("private_key_file", "private_key_passphrase")})
    try:
        query(conn, f"CREATE SCHEMA {schema}")
        yield {**keys, "schema": schema}
    finally:
        query(conn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()


@pytest.fixture
def real_section(account: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    return lambda **extra: {"type": "snowflake", **account, **extra}


class TestRealAccountContract(ConnectorContractSuite):
    connector_type = "snowflake"

    @pytest.fixture
    def contract_target(self, real_section: Callable[..., dict[str, Any]]) -> SnowflakeTarget:
        return SnowflakeTarget(real_section)


def _raw(real_section: Callable[..., dict[str, Any]]) -> Any:
    return connector(real_section(table="unused"))


def test_timestamp_tz_offsets_read_as_the_same_instant_in_utc(real_section):
    name = f"tz_{uuid.uuid4().hex[:8]}"
    with _raw(real_section) as c:
        target = c.table().sibling(name).sql()
        c._run(f'CREATE TABLE {target} ("t" TIMESTAMP_TZ(6))', None, "create")
        c._run(f"INSERT INTO {target} VALUES ('2024-01-01 12:00:00 +05:00')", None, "insert")
    got = read_table(real_section(table=f'"{name}"')).column("t").to_pylist()
    assert got == [dt.datetime(2024, 1, 1, 7, 0, tzinfo=dt.timezone.utc)]


def test_number_38_beyond_int64_reads_as_decimal(real_section):
    name = f"big_{uuid.uuid4().hex[:8]}"
    with _raw(real_section) as c:
        target = c.table().sibling(name).sql()
        c._run(f'CREATE TABLE {target} ("n" NUMBER(38,0))', None, "create")
        c._run(f"INSERT INTO {target} VALUES (123456789012345678901234567890)", None, "insert")
    got = read_table(real_section(table=f'"{name}"'))
    assert got.schema.field("n").type == pa.decimal128(38, 0)
    assert got.column("n").to_pylist() == [decimal.Decimal("123456789012345678901234567890")]


def test_large_result_arrives_in_several_arrow_chunks(real_section):
    keys = real_section(query="SELECT SEQ8() AS id, RANDSTR(20, RANDOM()) AS s FROM TABLE(GENERATOR(ROWCOUNT => 300000))")
    with connector(keys, role="source") as source:
        source.context.batch_size = 1_000_000
        batches = list(source.read_batches(State()))
    assert sum(b.row_count for b in batches) == 300_000
    assert len(batches) > 1


def test_merge_with_a_key_repeated_in_one_run_keeps_the_last_row(real_section):
    keys = real_section(table=f'"dup_{uuid.uuid4().hex[:8]}"')
    with connector({**keys, "write_mode": "merge", "merge_keys": ["id"]}) as destination:
        destination.begin(pa.schema([("id", pa.int64()), ("v", pa.string())]), "merge", State())
        destination.write_batch(Batch.from_arrow(pa.record_batch({"id": pa.array([1, 1, 2], pa.int64()), "v": ["a", "b", "c"]})), State())
        destination.commit(State())
    assert read_table(keys).sort_by("id").to_pydict() == {"id": [1, 2], "v": ["b", "c"]}


def test_abort_removes_the_staged_parts_and_the_staging_table(real_section):
    keys = real_section(table=f'"abort_{uuid.uuid4().hex[:8]}"', part_size_mb=1)
    with connector({**keys, "write_mode": "overwrite"}) as destination:
        destination.begin(pa.schema([("id", pa.int64())]), "overwrite", State())
        destination.write_batch(Batch.from_arrow(pa.record_batch({"id": pa.array(range(400_000), pa.int64())})), State())
        load = destination._load
        assert load is not None and load._parts.parts >= 1
        location = load._location()
        destination.abort()
        assert destination._run(f"LIST {location}", None, "list") in (None, [])
        with pytest.raises(ConnectorError):
            destination._run(f"SELECT 1 FROM {load.staging.sql()}", None, "look for the staging table")
