"""Reading: tables and queries, bound cursor values, names, row estimates, clear errors."""

from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import query
from dataloader.errors import ConnectorError
from dataloader.state import State
from target import connector, create_table, read_table, write_rows


def _seed(section, name: str) -> dict:
    keys = section(table=f'"{name}"')
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "note": pa.array(["50% off", "it's", None])})
    create_table(keys, data.schema)
    write_rows(keys, data)
    return keys


def test_query_source_with_percent_signs_and_quotes_reads_as_arrow(section, unique):
    name = unique("q")
    _seed(section, name)
    keys = section(query=f"SELECT \"id\", \"note\" FROM \"{name}\" WHERE \"note\" LIKE '%off' OR \"note\" = 'it''s';")
    with connector(keys, role="source") as source:
        got = pa.Table.from_batches([b.to_arrow() for b in source.read_batches(State())])
    assert got.sort_by("id").to_pydict() == {"id": [1, 2], "note": ["50% off", "it's"]}


def test_cursor_value_is_a_bound_parameter(section, unique):
    name = unique("bound")
    keys = _seed(section, name)
    keys["incremental"] = {"strategy": "cursor", "cursor_column": "note"}
    state = State()
    state.cursor_values["note"] = "it's"  # would break SQL if it were pasted into the text
    with connector(keys, role="source") as source:
        sql, params = source.select_sql(state)
        rows = [r for b in source.read_batches(state) for r in b.to_arrow().to_pylist()]
    assert "it's" not in sql and params == ["it's"]
    assert rows == [{"id": 2, "note": "it's"}]


def test_estimate_comes_from_table_metadata(section, unique):
    keys = _seed(section, unique("estimate"))
    with connector(keys, role="source") as source:
        assert source.estimate_total_records(State()) == 3
    with connector(section(query="SELECT 1 AS x"), role="source") as source:
        assert source.estimate_total_records(State()) is None


def test_unquoted_names_fold_to_upper_case_like_snowflake(section, unique, sf):
    name = unique("upper").upper()
    query(sf, f'CREATE TABLE {name} (ID NUMBER(19,0), NAME VARCHAR)')
    # Lower-case batch columns merge into the upper-case columns of an existing table.
    keys = section(table=name.lower())
    with connector({**keys, "write_mode": "merge", "merge_keys": ["id"]}) as destination:
        from dataloader.batch import Batch

        destination.begin(pa.schema([("id", pa.int64()), ("name", pa.string())]), "merge", State())
        destination.write_batch(Batch.from_arrow(pa.record_batch({"id": pa.array([1, 1], pa.int64()), "name": ["a", "b"]})), State())
        destination.commit(State())
    assert query(sf, f"SELECT ID, NAME FROM {name}") == [(1, "b")]
    assert read_table(keys).to_pydict() == {"ID": [1], "NAME": ["b"]}


def test_missing_table_is_one_error_naming_it(section):
    with connector(section(table="no_such_table"), role="source") as source, pytest.raises(ConnectorError, match="NO_SUCH_TABLE"):
        list(source.read_batches(State()))


def test_unknown_cursor_column_lists_the_columns(section, unique):
    keys = _seed(section, unique("cursor"))
    keys["incremental"] = {"strategy": "cursor", "cursor_column": "updated_at"}
    expected = r"'updated_at' is not a column .*columns: id, note"
    with connector(keys, role="source") as source, pytest.raises(ConnectorError, match=expected):
        list(source.read_batches(State()))


def test_column_the_target_lacks_is_refused_naming_it_before_anything_is_loaded(section, unique, sf):
    keys = _seed(section, unique("extra"))
    with pytest.raises(ConnectorError, match=r"has no column 'surprise'"):
        write_rows(keys, pa.table({"id": pa.array([9], pa.int64()), "surprise": ["x"]}))
    assert len(read_table(keys)) == 3
