"""Messy and hostile input files, through ``dataloader run``: values survive exactly, or the run fails
with one clear message naming the file (and the row, column or key) and what to do. A failed run
leaves the destination dataset and the recipe's state exactly as they were.

Every test first loads a good file into the dataset (so "unchanged" means something), then runs the
same recipe on the bad file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from filestore_helpers import dataset_dest, read_dataset, snapshot

RECIPE = "bad"


def recipe(path: Path, fmt: str, out: Path, **options) -> dict:
    source = {"type": "filestore", "path": str(path), "format": fmt}
    if options:
        source["options"] = options
    return {"name": RECIPE, "source": source, "destination": dataset_dest(out)}


@pytest.fixture
def loaded(cli, tmp_path: Path):
    """A dataset that already holds one committed run, and a checker for a failed run against it."""
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,first\n")
    out = tmp_path / "out"
    first = cli.run(recipe(good, "csv", out))
    assert first.exit_code == 0, first.output

    def fails(bad: dict, *expected: str) -> str:
        before_data, before_state = snapshot(out), cli.state(RECIPE)
        result = cli.run(bad)
        assert result.exit_code == 1, result.output
        for piece in expected:
            assert piece in result.output, f"{piece!r} not in {result.output!r}"
        assert "Traceback" not in result.output
        assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1, result.output
        assert snapshot(out) == before_data, "the failed run changed the dataset"
        assert cli.state(RECIPE) == before_state, "the failed run changed the state"
        return result.output

    def succeeds(good: dict) -> pa.Table:
        """Runs ``good`` into a dataset of its own (its columns differ from the loaded one's)."""
        good = {**good, "name": "good", "destination": dataset_dest(tmp_path / "good-out")}
        result = cli.run(good)
        assert result.exit_code == 0, result.output
        return read_dataset(tmp_path / "good-out")

    fails.out = out
    return fails, succeeds


def last_rows(table: pa.Table, count: int) -> list[dict]:
    assert table.num_rows == count
    return table.to_pylist()


# -- CSV: NULL is only what the recipe says ---------------------------------------------------------
def test_csv_null_markers_are_values_by_default(loaded, tmp_path: Path) -> None:
    _, succeeds = loaded
    path = tmp_path / "markers.csv"
    path.write_text('id,name,score\n2,NA,NaN\n3,N/A,nan\n4,NULL,1.5\n5,null,2.5\n6,#N/A,3.5\n7,,\n8,"",4.5\n')
    rows = last_rows(succeeds(recipe(path, "csv", loaded[0].out)), 7)
    assert [row["name"] for row in rows] == ["NA", "N/A", "NULL", "null", "#N/A", None, ""]
    scores = [row["score"] for row in rows]
    assert scores[0] != scores[0] and scores[1] != scores[1]  # NaN stays NaN, not NULL
    assert scores[2:] == [1.5, 2.5, 3.5, None, 4.5]


def test_csv_null_values_option_adds_markers(loaded, tmp_path: Path) -> None:
    _, succeeds = loaded
    path = tmp_path / "markers.csv"
    path.write_text("id,name\n2,NA\n3,n/a\n4,kept\n")
    rows = last_rows(succeeds(recipe(path, "csv", loaded[0].out, null_values=["NA", "n/a"])), 3)
    assert [row["name"] for row in rows] == [None, None, "kept"]


# -- CSV: whole numbers beyond int64 never lose digits ---------------------------------------------
@pytest.mark.parametrize("value", ["9223372036854775808", "18446744073709551615", "-9223372036854775809"])
def test_csv_integer_beyond_int64_is_an_error_naming_row_and_column(loaded, tmp_path: Path, value: str) -> None:
    fails, _ = loaded
    path = tmp_path / "ids.csv"
    path.write_text(f"id,name\n1,a\n{value},b\n")
    fails(recipe(path, "csv", fails.out), str(path), "row 2", "column 'id'", value, "column_types")


def test_csv_integer_beyond_int64_after_the_first_block_is_an_error_naming_its_row(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "ids.csv"
    path.write_text("id,name\n" + "".join(f"{n},x\n" for n in range(3000)) + "9223372036854775808,y\n")
    fails(recipe(path, "csv", fails.out, block_size=4096), str(path), "row 3001", "column 'id'", "column_types")


def test_csv_integer_beyond_int64_loads_exactly_with_column_types(cli, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id,name\n9223372036854775808,b\n-99999999999999999999999999,c\n")
    out = tmp_path / "wide"
    result = cli.run(recipe(path, "csv", out, column_types={"id": "decimal(38,0)"}))
    assert result.exit_code == 0, result.output
    assert [str(v) for v in read_dataset(out).column("id").to_pylist()] == [
        "9223372036854775808", "-99999999999999999999999999",
    ]


def test_csv_floats_written_as_floats_stay_floats(loaded, tmp_path: Path) -> None:
    _, succeeds = loaded
    path = tmp_path / "floats.csv"
    path.write_text("id,name,score\n2,a,1e300\n3,b,-1.5e19\n")
    rows = last_rows(succeeds(recipe(path, "csv", loaded[0].out)), 2)
    assert [row["score"] for row in rows] == [1e300, -1.5e19]


# -- CSV: headers ------------------------------------------------------------------------------------
def test_csv_duplicate_header_names_the_file_and_both_positions(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "dup.csv"
    path.write_text("id,name,id\n1,a,2\n")
    output = fails(recipe(path, "csv", fails.out), str(path), "columns 1 and 3", "'id'", "column_names")
    assert "differ only in case" not in output


def test_csv_empty_header_name_names_the_file_and_the_position(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "blank.csv"
    path.write_text("id,,name\n1,2,a\n")
    fails(recipe(path, "csv", fails.out), str(path), "no name for column 2", "column_names")


# -- CSV: encodings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_csv_utf16_read_as_utf8_names_the_file_and_suggests_encoding(loaded, tmp_path: Path, codec: str) -> None:
    fails, _ = loaded
    path = tmp_path / "wide.csv"
    path.write_bytes("id,name\n2,Zoë\n".encode(codec))
    fails(recipe(path, "csv", fails.out), str(path), "utf-16", "options.encoding")


def test_csv_encoding_auto_reads_utf16_with_a_byte_order_mark(loaded, tmp_path: Path) -> None:
    _, succeeds = loaded
    path = tmp_path / "wide.csv"
    path.write_bytes("id,name\n2,Zoë\n".encode("utf-16"))
    assert last_rows(succeeds(recipe(path, "csv", loaded[0].out, encoding="auto")), 1) == [{"id": 2, "name": "Zoë"}]


def test_csv_encoding_auto_reads_a_short_cp1252_file_as_cp1252(loaded, tmp_path: Path) -> None:
    _, succeeds = loaded
    path = tmp_path / "short.csv"
    path.write_bytes("id;name;price\n3;Zoë;3,25\n".encode("cp1252"))
    table = succeeds(recipe(path, "csv", loaded[0].out, encoding="auto", delimiter=";"))
    assert last_rows(table.select(["id", "name"]), 1) == [{"id": 3, "name": "Zoë"}]


def test_csv_parse_error_says_which_encoding_auto_detected(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "ragged.csv"
    path.write_bytes("id,name\n2,Zoë\n3,Åsa,extra\n".encode("cp1252"))
    fails(recipe(path, "csv", fails.out, encoding="auto"), str(path), "row 2", "read as cp1252, detected by encoding: auto")


def test_csv_invalid_text_in_the_declared_encoding_names_row_column_and_encoding(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "latin.csv"
    path.write_bytes("id,name\n2,Zoë\n".encode("latin-1"))
    fails(recipe(path, "csv", fails.out), str(path), "row 1", "column 'name'", "read as utf-8", "options.encoding")


# -- JSON --------------------------------------------------------------------------------------------
def _rows_changing_type(count: int = 20_000) -> list[dict]:
    return [{"id": n, "name": f"r{n}", "code": n} for n in range(count)] + [{"id": count, "name": "x", "code": "A-1"}]


def test_jsonl_key_changing_type_at_row_20001_names_file_row_and_key(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows_changing_type()))
    fails(recipe(path, "jsonl", fails.out), str(path), "row 20001", "'code'", "number", "string")


def test_json_array_key_changing_type_at_row_20001_names_file_row_and_key(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "events.json"
    path.write_text(json.dumps(_rows_changing_type()))
    fails(recipe(path, "json", fails.out), str(path), "row 20001", "'code'", "number", "string")


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_integer_beyond_int64_is_an_error_naming_row_and_key(loaded, tmp_path: Path, fmt: str) -> None:
    fails, _ = loaded
    rows = [{"id": 2, "name": "a", "big": 1.5}, {"id": 3, "name": "b", "big": 9223372036854775808}]
    path = tmp_path / f"big.{fmt}"
    path.write_text(json.dumps(rows) if fmt == "json" else "".join(json.dumps(r) + "\n" for r in rows))
    fails(recipe(path, fmt, fails.out), str(path), "row 2", "'big'", "9223372036854775808", "column_types")


def test_jsonl_integer_beyond_int64_after_the_first_block_names_its_row(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"id": n}) + "\n" for n in range(3000)) + '{"id": 9223372036854775808}\n')
    fails(recipe(path, "jsonl", fails.out, block_size=4096), str(path), "row 3001", "'id'", "column_types")


# -- Parquet -----------------------------------------------------------------------------------------
def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_truncated_parquet_file_says_so(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "cut.parquet"
    path.write_bytes(_parquet_bytes(pa.table({"id": list(range(100))}))[:200])
    fails(recipe(path, "parquet", fails.out), str(path), "truncated", "copy it again")


def test_a_csv_file_named_parquet_is_not_a_parquet_file(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "really.parquet"
    path.write_text("id,name\n1,a\n")
    fails(recipe(path, "parquet", fails.out), str(path), "not a Parquet file", "source.format")


def test_an_empty_parquet_file_says_it_is_empty(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    path = tmp_path / "empty.parquet"
    path.write_bytes(b"")
    fails(recipe(path, "parquet", fails.out), str(path), "empty (0 bytes)")


def test_parquet_files_of_one_source_with_off_lattice_types_are_refused_naming_both(loaded, tmp_path: Path) -> None:
    import datetime

    fails, _ = loaded
    folder = tmp_path / "parts"
    folder.mkdir()
    stamp = pa.array([datetime.datetime(2026, 1, 1)], pa.timestamp("us"))
    (folder / "a.parquet").write_bytes(_parquet_bytes(pa.table({"id": [2], "name": ["a"], "seen": stamp})))
    (folder / "b.parquet").write_bytes(_parquet_bytes(pa.table({"id": [3], "name": ["b"], "seen": [True]})))
    fails(recipe(folder, "parquet", fails.out), "column 'seen'", "timestamp in " + str(folder / "a.parquet"),
          "bool in " + str(folder / "b.parquet"), "separate recipes")


def test_parquet_files_of_one_source_with_incompatible_types(loaded, tmp_path: Path) -> None:
    fails, _ = loaded
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(_parquet_bytes(pa.table({"id": [2], "name": ["a"]})))
    (folder / "b.parquet").write_bytes(_parquet_bytes(pa.table({"id": ["three"], "name": ["b"]})))
    fails(recipe(folder, "parquet", fails.out), str(folder / "b.parquet"), "column 'id'", "int64", "string", str(folder / "a.parquet"))


def test_json_array_key_turning_from_whole_numbers_to_a_float_names_row_and_fix(loaded, tmp_path: Path) -> None:
    fails, succeeds = loaded
    rows = [{"id": n, "name": "r", "amount": n} for n in range(20_000)] + [{"id": 20_000, "name": "r", "amount": 1.5}]
    path = tmp_path / "amounts.json"
    path.write_text(json.dumps(rows))
    fails(recipe(path, "json", fails.out), str(path), "row 20001", "'amount'", "float64")
    table = succeeds(recipe(path, "json", fails.out, column_types={"amount": "float64"}))
    assert table.column("amount").to_pylist()[-2:] == [19_999.0, 1.5]

