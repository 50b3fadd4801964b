"""Each built-in file format passes the shipped format contract suite."""

from __future__ import annotations

import pytest
from dataloader.testing.formats import FormatContractSuite


class TestParquetFormat(FormatContractSuite):
    format_name = "parquet"
    streaming_rows = 8_000_000  # a Parquet file is compact: this makes about 140 MB

    @pytest.fixture
    def streaming_options(self):
        return {"row_group_size": 10_000}

    @pytest.fixture
    def corrupt_file(self):
        return b"PAR1" + b"\x00" * 64 + b"garbage, not a footer" + b"PAR1"


class TestCsvFormat(FormatContractSuite):
    format_name = "csv"
    typed = False

    @pytest.fixture
    def corrupt_file(self):
        return b"id,name\n1,Ada\n2,Bob,one field too many\n"


class TestJsonLinesFormat(FormatContractSuite):
    format_name = "jsonl"

    @pytest.fixture
    def corrupt_file(self):
        return b'{"id": 1}\n{"id": 2,,}\n'


class TestJsonFormat(FormatContractSuite):
    format_name = "json"

    @pytest.fixture
    def corrupt_file(self):
        return b'[{"id": 1}, {"id": '
