"""Types DuckDB cannot take, or that Python cannot hold, through the ``dataloader`` command.

- A ``decimal256`` column (DuckDB's DECIMAL holds 38 digits; its Arrow import refuses the type)
  fails before anything is written, in one message naming the column and the cast to add.
- A cursor column of any DuckDB timestamp type, ``TIMESTAMP_NS`` with real nanoseconds included,
  drives incremental reads exactly once (a Python ``datetime`` holds microseconds only).
"""

from __future__ import annotations

import decimal
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import write_recipe
from dataloader.cli import main
from dataloader.plugins import use_host
from dataloader.testing import MEMORY_TABLES, plugin_host


def _cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``dataloader ARGS...`` in this process, with the kit's in-memory connector next to the installed ones."""
    with use_host(plugin_host()):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        else:
            code = 0
    captured = capfd.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def wide_decimals() -> pa.Table:
    values = [decimal.Decimal("12345678901234567890123456789012345678.91"), decimal.Decimal("1.50")]
    table = pa.table({"id": [1, 2], "amount": pa.array(values, pa.decimal256(40, 2))})
    MEMORY_TABLES["wide_decimals"] = table
    yield table
    MEMORY_TABLES.pop("wide_decimals", None)


@pytest.mark.parametrize("mode", ["append", "overwrite", "merge"])
def test_a_decimal256_column_is_refused_before_anything_is_written(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], wide_decimals: pa.Table, mode: str
) -> None:
    con = duckdb.connect(str(tmp_path / "dst.duckdb"))
    con.execute("CREATE TABLE money AS SELECT 7 AS id, 'kept' AS note")
    con.close()
    keys = ", merge_keys: [id]" if mode == "merge" else ""
    recipe = write_recipe(
        tmp_path,
        "money",
        f"""
name: money
source: {{type: contract_memory, table: wide_decimals}}
destination: {{type: duckdb, database: {tmp_path / 'dst.duckdb'}, table: money, write_mode: {mode}{keys}}}
""",
    )
    code, output = _cli(capfd, "run", str(recipe), "--state-dir", str(tmp_path / "state"))
    assert code == 1, output
    assert (
        "column 'amount' is decimal256(40, 2), which DuckDB cannot store (its DECIMAL holds at most 38 digits); "
        "nothing was written to money: add a 'cast' transform step, {amount: 'decimal(38,2)'} if its values fit "
        "in 38 digits, or {amount: string} to keep every digit"
    ) in output
    assert "Traceback" not in output and "Not implemented" not in output
    con = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    assert con.execute("SELECT * FROM money").fetchall() == [(7, "kept")]
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_dataloader%'").fetchall() == [(0,)]
    con.close()
    saved = tmp_path / "state" / "money.json"
    assert not saved.exists() or json.loads(saved.read_text())["cursor_values"] == {}


def test_the_advised_cast_to_string_keeps_every_digit(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], wide_decimals: pa.Table
) -> None:
    recipe = write_recipe(
        tmp_path,
        "money",
        f"""
name: money
source: {{type: contract_memory, table: wide_decimals}}
transform: {{steps: [{{type: cast, columns: {{amount: string}}}}]}}
destination: {{type: duckdb, database: {tmp_path / 'dst.duckdb'}, table: money}}
""",
    )
    code, output = _cli(capfd, "run", str(recipe), "--state-dir", str(tmp_path / "state"))
    assert code == 0, output
    con = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    assert con.execute("SELECT amount FROM money ORDER BY id").fetchall() == [
        ("12345678901234567890123456789012345678.91",), ("1.50",)
    ]
    con.close()


@pytest.mark.parametrize(
    ("type_", "first", "later"),
    [
        # Real nanoseconds: three rows within one microsecond, the second run adds two more in it.
        ("TIMESTAMP_NS", ["04.000004001", "04.000004002", "03.999999999"], ["04.000004003", "04.000004999", "05"]),
        ("TIMESTAMP_MS", ["04.001", "04.002", "03.5"], ["04.002", "04.003", "05"]),
        ("TIMESTAMP_S", ["04", "04", "03"], ["04", "05", "06"]),
        ("TIMESTAMPTZ", ["04.000001+00", "04.000002+00", "03+00"], ["04.000002+00", "04.000003+00", "05+00"]),
    ],
)
def test_every_duckdb_timestamp_type_works_as_an_incremental_cursor(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], type_: str, first: list[str], later: list[str]
) -> None:
    source = tmp_path / "src.duckdb"
    con = duckdb.connect(str(source))
    con.execute(f"CREATE TABLE events (id INTEGER, seen {type_})")
    con.executemany(
        f"INSERT INTO events VALUES (?, CAST(? AS {type_}))", [[i, f"2024-01-01 00:00:{v}"] for i, v in enumerate(first)]
    )
    con.close()
    recipe = write_recipe(
        tmp_path,
        "events",
        f"""
name: events
source:
  type: duckdb
  database: {source}
  table: events
  incremental: {{strategy: cursor, cursor_column: seen, primary_key: [id]}}
destination: {{type: duckdb, database: {tmp_path / 'dst.duckdb'}, table: events}}
""",
    )
    args = ("run", str(recipe), "--state-dir", str(tmp_path / "state"))
    code, output = _cli(capfd, *args)
    assert code == 0, output
    con = duckdb.connect(str(source))
    con.executemany(
        f"INSERT INTO events VALUES (?, CAST(? AS {type_}))",
        [[10 + i, f"2024-01-01 00:00:{v}"] for i, v in enumerate(later)],
    )
    con.close()
    for _ in range(2):  # the second run finds nothing new
        code, output = _cli(capfd, *args)
        assert code == 0, output
        assert "pandas" not in output
    con = duckdb.connect(str(tmp_path / "dst.duckdb"), read_only=True)
    loaded = con.execute("SELECT id, seen::VARCHAR FROM events ORDER BY id").fetchall()
    con.close()
    con = duckdb.connect(str(source), read_only=True)
    expected = con.execute("SELECT id, seen::VARCHAR FROM events ORDER BY id").fetchall()
    con.close()
    assert loaded == expected  # every row once, every value to the last digit
