"""Options models shared by the formats, and the type names recipe authors may use in them."""

from __future__ import annotations

import re
from typing import Literal

import pyarrow as pa
from dataloader.config import ConfigModel
from pydantic import field_validator

#: ``auto`` follows the file name (``.gz``, ``.zst``); reading and writing both honour it.
StreamCompression = Literal["auto", "gzip", "zstd", "none"]

_DECIMAL = re.compile(r"^decimal(?:128)?\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def parse_type(name: str) -> pa.DataType:
    """An Arrow type from a recipe spelling: ``int64``, ``string``, ``date``, ``decimal(12,2)``, ``timestamp[ms]``..."""
    text = name.strip().lower()
    aliases = {"str": "string", "text": "string", "int": "int64", "integer": "int64", "float": "float64",
               "boolean": "bool", "date": "date32", "timestamp": "timestamp[us]", "datetime": "timestamp[us]"}
    text = aliases.get(text, text)
    match = _DECIMAL.match(text)
    if match:
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    try:
        return pa.type_for_alias(text)
    except ValueError:
        raise ValueError(
            f"unknown column type {name!r} (use e.g. string, int64, float64, bool, date, timestamp[ms], decimal(12,2))"
        ) from None


class ColumnTypesMixin(ConfigModel):
    #: Read these columns with these types instead of inferring them from the first block.
    column_types: dict[str, str] = {}

    @field_validator("column_types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for type_name in value.values():
            parse_type(type_name)
        return value

    def arrow_column_types(self) -> dict[str, pa.DataType]:
        return {name: parse_type(type_name) for name, type_name in self.column_types.items()}
