"""CSV reading and writing: quoting, encodings, compression, and errors that say where."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from dataloader.errors import ConnectorError, DataLoaderError
from dataloader.state import State
from dataloader_filestore.config import FilestoreConfig
from dataloader_filestore.connector import FilestoreConnector
from filestore_helpers import CUSTOMERS_CSV, dataset_dest, read_dataset


def read_all(path: str | Path, **section) -> tuple[pa.Table, list[dict]]:
    """Every row the filestore source yields for ``path``, and each batch's metadata."""
    config = FilestoreConfig.model_validate({"type": "filestore", "path": str(path), "format": "csv", **section})
    connector = FilestoreConnector(config)
    connector.open()
    try:
        batches = list(connector.read_batches(State()))
    finally:
        connector.close()
    if not batches:
        return pa.table({}), []
    return pa.Table.from_batches([b.to_arrow() for b in batches]), [b.metadata for b in batches]


def test_quoted_commas_newlines_quotes_tabs_and_unicode_are_read_as_written(host) -> None:
    table, metadata = read_all(CUSTOMERS_CSV)
    rows = {row["id"]: row for row in table.to_pylist()}
    assert table.num_rows == 200
    assert rows[1]["note"] == "line one\nline two"
    assert rows[6]["note"] == "tab\there"
    assert rows[10]["city"] == "New York, NY"
    assert rows[10]["note"] == 'said "hello"'
    assert rows[2]["lname"] == "Đorđević" and rows[2]["city"] == "Kraków"
    assert rows[12]["lname"] == "O'Brien"
    assert {m["file"] for m in metadata} == {str(CUSTOMERS_CSV)}


def test_unquoted_empty_field_is_null_and_quoted_empty_is_empty_string(host, tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text('id,text\n1,\n2,""\n3,x\n', encoding="utf-8")
    table, _ = read_all(path)
    assert table.column("text").to_pylist() == [None, "", "x"]
    table, _ = read_all(path, options={"empty_is_null": False})
    assert table.column("text").to_pylist() == ["", "", "x"]


def test_encoding_auto_detects_latin1(host, tmp_path: Path) -> None:
    names = ["Lucía Müller", "Søren García", "Björn Dubois", "Tomás Rossi"]
    cities = ["Kraków", "Reykjavík", "Zürich", "São Paulo"]
    text = "id,name,city\n" + "".join(f"{i},{names[i % 4]},{cities[i % 4]}\n" for i in range(40))
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    table, _ = read_all(path, options={"encoding": "auto"})
    assert set(table.column("name").to_pylist()) == set(names)
    assert set(table.column("city").to_pylist()) == set(cities)


def test_explicit_encoding_and_tab_delimiter_without_header(host, tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_bytes("1\tGrüße\n2\tçà\n".encode("cp1252"))
    table, _ = read_all(
        path, options={"encoding": "cp1252", "delimiter": "\t", "header": False, "column_names": ["id", "word"]}
    )
    assert table.to_pylist() == [{"id": 1, "word": "Grüße"}, {"id": 2, "word": "çà"}]


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".csv.gz", gzip.compress), (".csv.zst", lambda data: zstandard.ZstdCompressor().compress(data))],
)
def test_compressed_files_are_read_by_extension(host, tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"customers{suffix}"
    path.write_bytes(compress(CUSTOMERS_CSV.read_bytes()))
    table, _ = read_all(path)
    expected, _ = read_all(CUSTOMERS_CSV)
    assert table.equals(expected)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_parts_are_written_and_read_back(run, tmp_path: Path, codec: str) -> None:
    out = tmp_path / "out"
    run({"type": "filestore", "path": str(CUSTOMERS_CSV), "format": "csv"},
        dataset_dest(out, "csv", options={"compression": codec}))
    parts = [p.name for p in out.glob("part-*")]
    assert len(parts) == 1 and parts[0].endswith({"gzip": ".csv.gz", "zstd": ".csv.zst"}[codec])
    raw = (out / parts[0]).read_bytes()
    assert raw[:2] == b"\x1f\x8b" if codec == "gzip" else raw[:4] == b"\x28\xb5\x2f\xfd"
    table, _ = read_all(out)
    expected, _ = read_all(CUSTOMERS_CSV)
    assert table.equals(expected)


def _big_csv(path: Path, rows: int, bad_row: int, bad_line: str) -> None:
    lines = ["id,name,amount"]
    for i in range(1, rows + 1):
        lines.append(bad_line if i == bad_row else f'{i},"name {i}, with comma",{i}.5')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_row_with_too_many_fields_names_file_and_row(host, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    _big_csv(path, 60_000, 45_678, "45678,too,many,fields")
    with pytest.raises(ConnectorError) as caught:
        read_all(path, options={"block_size": 65536})
    message = str(caught.value)
    assert str(path) in message
    assert "row 45678 (line 45679)" in message
    assert caught.value.context["row"] == 45678 and caught.value.context["file"] == str(path)


def test_value_that_does_not_fit_the_inferred_type_names_file_and_row(host, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    _big_csv(path, 60_000, 51_000, '51000,"x",not-a-number')
    with pytest.raises(ConnectorError) as caught:
        read_all(path, options={"block_size": 65536})
    assert f"malformed CSV in {path} at row 51000 (line 51001)" in str(caught.value)
    assert "options.column_types" in str(caught.value)


def test_column_types_override_inference(host, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    _big_csv(path, 60_000, 51_000, '51000,"x",not-a-number')
    table, _ = read_all(path, options={"block_size": 65536, "column_types": {"amount": "string"}})
    assert table.schema.field("amount").type == pa.string()
    assert table.num_rows == 60_000


def test_missing_path_names_the_path(host, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"path not found: .*nowhere\.csv"):
        read_all(tmp_path / "nowhere.csv")


def test_glob_with_no_matches_is_an_error(host, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"no files match .*\*\.csv"):
        read_all(tmp_path / "*.csv")


def test_corrupt_gzip_names_the_file(host, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(b"id\n1\n2\n")[:-6] + b"garbage")
    with pytest.raises(ConnectorError, match=r"bad\.csv\.gz"):
        read_all(path)


def test_files_are_read_in_path_order_and_unified_to_the_first_schema(host, tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("id,amount\n3,7\n", encoding="utf-8")
    (tmp_path / "a.csv").write_text("id,amount,note\n1,1.5,x\n2,2.5,y\n", encoding="utf-8")
    (tmp_path / "_ignored.csv").write_text("id\n99\n", encoding="utf-8")
    table, metadata = read_all(tmp_path)
    assert table.to_pylist() == [
        {"id": 1, "amount": 1.5, "note": "x"},
        {"id": 2, "amount": 2.5, "note": "y"},
        {"id": 3, "amount": 7.0, "note": None},
    ]
    assert [Path(m["file"]).name for m in metadata] == ["a.csv", "b.csv"]


def test_a_column_numbers_in_one_file_and_words_in_another_reads_as_text(host, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,amount\n1,2\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("id,amount\n2,lots\n", encoding="utf-8")
    table, _ = read_all(tmp_path)
    assert table.schema.field("amount").type == pa.string()
    assert sorted(table.column("amount").to_pylist()) == ["2", "lots"]


def test_a_file_whose_values_do_not_fit_a_pinned_type_is_named(host, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,amount\n1,2\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("id,amount\n2,lots\n", encoding="utf-8")
    with pytest.raises(ConnectorError, match=r"b\.csv at row 1 .*column .amount. is pinned to int64 in options\.column_types"):
        read_all(tmp_path, options={"column_types": {"amount": "int64"}})


def test_unknown_option_is_reported_at_validate_time(host) -> None:
    with pytest.raises(ValueError, match=r"options\.delimter"):
        FilestoreConfig.model_validate(
            {"type": "filestore", "path": "x.csv", "format": "csv", "options": {"delimter": ";"}}
        )


def test_written_csv_parts_keep_quotes_newlines_and_nulls(run, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    original = pa.table({"id": [1, 2, 3, 4], "text": ['a,"b"', "x\ny\tz", None, ""]})
    pq.write_table(original, source)
    run({"type": "filestore", "path": str(source), "format": "parquet"}, dataset_dest(tmp_path / "out", "csv"))
    table, _ = read_all(tmp_path / "out")
    assert table.to_pylist() == original.to_pylist()
    assert read_dataset(tmp_path / "nothing") is None


def test_parts_are_written_in_the_configured_encoding_and_delimiter(run, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    names = ["Müller", "Søren", "García", "Kraków"]
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "name": names}), source)
    out = tmp_path / "out"
    run({"type": "filestore", "path": str(source), "format": "parquet"},
        dataset_dest(out, "csv", options={"encoding": "latin-1", "delimiter": ";"}))
    (part,) = out.glob("part-*")
    raw = part.read_bytes()
    assert raw.startswith(b'"id";"name"') and "Søren".encode("latin-1") in raw
    table, _ = read_all(out, options={"encoding": "auto", "delimiter": ";"})
    assert table.column("name").to_pylist() == names


def test_a_character_the_encoding_lacks_is_an_error_naming_it(run, tmp_path: Path) -> None:
    with pytest.raises(DataLoaderError, match=r"'Đ' cannot be written in latin-1.*utf-8"):
        run({"type": "filestore", "path": str(CUSTOMERS_CSV), "format": "csv"},
            dataset_dest(tmp_path / "out", "csv", options={"encoding": "latin-1"}))


def test_a_row_longer_than_a_block_is_read_with_bigger_blocks(host, tmp_path) -> None:
    wide = "y" * 300_000
    path = tmp_path / "wide.csv"
    path.write_text(f"id,text\n1,a\n2,{wide}\n3,c\n", encoding="utf-8")
    table, _ = read_all(path, options={"block_size": 4096})
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert [len(t) for t in table.column("text").to_pylist()] == [1, len(wide), 1]


def test_invalid_utf8_names_the_file_row_and_column(host, tmp_path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,name\n1,ok\n2,caf\xe9\n")
    with pytest.raises(ConnectorError, match=r"invalid UTF-8 text in .*latin.csv, row 2, column 'name'.*options.encoding"):
        read_all(path, options={"encoding": "utf-8"})


def _schema_and_read(path: Path, **section) -> tuple[pa.Schema | None, pa.Table]:
    config = FilestoreConfig.model_validate({"type": "filestore", "path": str(path), "format": "csv", **section})
    connector = FilestoreConnector(config)
    connector.open()
    try:
        schema = connector.get_schema()
    finally:
        connector.close()
    table, _ = read_all(path, **section)
    return schema, table


def test_the_preflight_schema_is_the_schema_the_read_gives(tmp_path: Path) -> None:
    """get_schema parses only the first block, yet answers what the whole read will produce."""
    assert _schema_and_read(CUSTOMERS_CSV)[0] == _schema_and_read(CUSTOMERS_CSV)[1].schema
    path = tmp_path / "typed.csv.gz"
    path.write_bytes(gzip.compress(b"id,when,amount,flag\n1,2024-01-02T03:04:05Z,1.5,true\n2,,,false\n"))
    schema, table = _schema_and_read(path, options={"column_types": {"amount": "decimal(10,2)"}})
    assert schema == table.schema
    assert schema.field("amount").type == pa.decimal128(10, 2) and pa.types.is_timestamp(schema.field("when").type)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _schema_and_read(empty)[0] is None


def test_a_first_block_that_does_not_parse_still_fails_the_preflight_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,name\n1,a\n2,b,extra\n")
    config = FilestoreConfig.model_validate({"type": "filestore", "path": str(path), "format": "csv"})
    connector = FilestoreConnector(config)
    connector.open()
    try:
        with pytest.raises(ConnectorError, match="row 2"):
            connector.get_schema()
    finally:
        connector.close()


def test_text_invalid_in_the_encoding_fails_the_preflight_naming_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,name\n1,ok\n2,caf\xe9\n")
    config = FilestoreConfig.model_validate({"type": "filestore", "path": str(path), "format": "csv"})
    connector = FilestoreConnector(config)
    connector.open()
    try:
        with pytest.raises(ConnectorError, match=r"invalid UTF-8 text in .*latin\.csv, row 2"):
            connector.get_schema()
    finally:
        connector.close()
