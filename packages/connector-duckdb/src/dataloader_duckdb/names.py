"""SQL identifiers: every name dataloader sends to DuckDB goes through :func:`quote_ident`.

Recipe authors write ``table: customers`` or ``table: dw.customers``; a part that itself contains a
dot is written in double quotes (``table: '"my.schema"."odd table"'``). Inside a part, capitals,
spaces and quote characters are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (embedded double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A table, optionally qualified by its schema."""

    name: str
    schema: str | None = None

    @property
    def sql(self) -> str:
        if self.schema is None:
            return quote_ident(self.name)
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


def parse_table_name(text: str) -> TableName:
    """Split ``table`` or ``schema.table``; raises ``ValueError`` with the reason."""
    parts = _split_parts(text)
    if len(parts) > 2:
        raise ValueError(
            f"table {text!r} has {len(parts)} dot-separated parts; use 'table' or 'schema.table' "
            "(quote a part that contains a dot: '\"a.b\"')"
        )
    if any(part == "" for part in parts):
        raise ValueError(f"table {text!r} has an empty name part")
    if len(parts) == 2:
        return TableName(name=parts[1], schema=parts[0])
    return TableName(name=parts[0])


def _split_parts(text: str) -> list[str]:
    parts: list[str] = []
    index = 0
    while True:
        if text.startswith('"', index):
            part, index = _quoted_part(text, index)
        else:
            end = text.find(".", index)
            end = len(text) if end == -1 else end
            part, index = text[index:end], end
        parts.append(part)
        if index >= len(text):
            return parts
        if text[index] != ".":
            raise ValueError(f"table {text!r}: expected '.' after a quoted name at position {index}")
        index += 1
        if index == len(text):
            raise ValueError(f"table {text!r} ends with '.'")


def _quoted_part(text: str, start: int) -> tuple[str, int]:
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        if text[index] == '"':
            if text.startswith('""', index):
                chars.append('"')
                index += 2
                continue
            return "".join(chars), index + 1
        chars.append(text[index])
        index += 1
    raise ValueError(f"table {text!r} has an unterminated double quote")


__all__ = ["TableName", "parse_table_name", "quote_ident"]
