"""JSON and JSON Lines: both shapes of ``json`` input, and writers whose output parses."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataloader.errors import ConnectorError
from dataloader.state import State
from dataloader_filestore.config import FilestoreConfig
from dataloader_filestore.connector import FilestoreConnector
from filestore_helpers import dataset_dest

ROWS = [
    {"id": 1, "text": 'quote " backslash \\ newline \n tab \t bell \x07', "score": 1.5, "ok": True},
    {"id": 2, "text": "Grüße ✓ 日本", "score": None, "ok": False},
    {"id": 3, "text": None, "score": 3.0, "ok": None},
]


def read_all(path: Path, fmt: str, batch_size: int = 10_000) -> pa.Table:
    config = FilestoreConfig.model_validate({"type": "filestore", "path": str(path), "format": fmt})
    connector = FilestoreConnector(config)
    connector.context.batch_size = batch_size
    connector.open()
    batches = [b.to_arrow() for b in connector.read_batches(State())]
    return pa.Table.from_batches(batches)


def test_json_reads_a_top_level_array_in_batches(host, tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS, indent=2, ensure_ascii=False), encoding="utf-8")
    assert read_all(path, "json", batch_size=2).to_pylist() == ROWS


def test_json_array_after_a_byte_order_mark(host, tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf  " + json.dumps(ROWS).encode("utf-8"))
    assert read_all(path, "json").to_pylist() == ROWS


def test_json_also_reads_newline_delimited_objects(host, tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    assert read_all(path, "json").to_pylist() == ROWS


def test_malformed_array_names_file_and_row(host, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"id": 1}, {"id": 2}, {"id": 3,, }]', encoding="utf-8")
    with pytest.raises(ConnectorError, match=r"malformed JSON in .*bad\.json at row 3"):
        read_all(path, "json")


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_written_json_parses_and_reads_back_unchanged(run, tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), source)
    out = tmp_path / "out"
    run({"type": "filestore", "path": str(source), "format": "parquet"}, dataset_dest(out, fmt), batch_size=2)
    (part,) = out.glob("part-*")
    text = part.read_text(encoding="utf-8")
    parsed = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
    assert parsed == ROWS
    assert read_all(out, fmt).to_pylist() == ROWS


def test_nested_and_temporal_values_are_written_as_json(run, tmp_path: Path) -> None:
    import datetime as dt
    import decimal

    table = pa.table(
        {
            "tags": pa.array([["a", "b"], None]),
            "when": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5), None]),
            "amount": pa.array([decimal.Decimal("12.30"), None], pa.decimal128(5, 2)),
            "ratio": pa.array([2.0, float("nan")]),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    run({"type": "filestore", "path": str(source), "format": "parquet"}, dataset_dest(tmp_path / "out", "jsonl"))
    (part,) = (tmp_path / "out").glob("part-*")
    lines = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"tags": ["a", "b"], "when": "2024-01-02 03:04:05.000000", "amount": "12.30", "ratio": 2.0},
        {"tags": None, "when": None, "amount": None, "ratio": None},
    ]


def test_malformed_json_line_names_file_and_row(host, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps({"id": i, "text": f"row {i}"}) for i in range(1, 30_001)]
    lines[23_456] = '{"id": 23457, "text": "unterminated}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConnectorError) as caught:
        read_all(path, "jsonl")
    assert f"malformed JSON in {path} at row 23457:" in str(caught.value)
    assert caught.value.context["row"] == 23457
