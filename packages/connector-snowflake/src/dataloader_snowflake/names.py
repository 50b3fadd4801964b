"""Snowflake identifiers: how a recipe's names become quoted SQL.

Snowflake folds an unquoted identifier to upper case and keeps a double-quoted one as written. A
recipe's ``table``/``database``/``schema``/``stage`` follow the same rule, so ``customers`` names
the table a Snowflake user created as ``CREATE TABLE customers``. Column names come from Arrow and
are always kept exactly (quoted), which is what a parquet load with ``MATCH_BY_COLUMN_NAME`` needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def quote(name: str) -> str:
    """``name`` as a quoted identifier, exactly as written."""
    return '"' + name.replace('"', '""') + '"'


def parse_identifier(text: str) -> str:
    """One name part: ``"Mixed Case"`` keeps its case; a plain ``name`` folds to ``NAME``."""
    parts = split_name(text)
    if len(parts) != 1:
        raise ValueError(f"{text!r} must be a single name, without dots")
    return parts[0]


def split_name(text: str) -> list[str]:
    """Dotted name parts, each resolved as Snowflake resolves it (see :func:`parse_identifier`)."""
    text = text.strip()
    parts: list[str] = []
    i = 0
    while True:
        if i < len(text) and text[i] == '"':
            j, chars = i + 1, []
            while True:
                if j >= len(text):
                    raise ValueError(f"unterminated double quote in {text!r}")
                if text[j] == '"':
                    if j + 1 < len(text) and text[j + 1] == '"':
                        chars.append('"')
                        j += 2
                        continue
                    break
                chars.append(text[j])
                j += 1
            if not chars:
                raise ValueError(f"empty quoted name in {text!r}")
            parts.append("".join(chars))
            i = j + 1
        else:
            match = _PLAIN.match(text, i)
            if not match:
                raise ValueError(
                    f"{text!r} is not a valid Snowflake name; quote a name with spaces or other "
                    'characters in double quotes, e.g. \'"my table"\''
                )
            parts.append(match.group(0).upper())
            i = match.end()
        if i == len(text):
            return parts
        if text[i] != ".":
            raise ValueError(f"unexpected {text[i]!r} in {text!r}; separate name parts with dots")
        i += 1


@dataclass(frozen=True)
class TableName:
    """A possibly partial ``database.schema.table``; ``None`` parts come from the connection."""

    table: str
    schema: str | None = None
    database: str | None = None

    def within(self, database: str | None, schema: str | None) -> TableName:
        return TableName(
            self.table,
            self.schema or (parse_identifier(schema) if schema else None),
            self.database or (parse_identifier(database) if database else None),
        )

    def sql(self) -> str:
        return ".".join(quote(p) for p in (self.database, self.schema, self.table) if p)

    def sibling(self, table: str) -> TableName:
        """Another table in the same database and schema."""
        return TableName(table, self.schema, self.database)

    def schema_sql(self) -> str | None:
        if not self.schema:
            return None
        return ".".join(quote(p) for p in (self.database, self.schema) if p)

    def display(self) -> str:
        return ".".join(p for p in (self.database, self.schema, self.table) if p)


def parse_table_name(text: str) -> TableName:
    parts = split_name(text)
    if len(parts) > 3:
        raise ValueError(f"table {text!r} has more than three parts; use name, schema.name or database.schema.name")
    parts = [None] * (3 - len(parts)) + parts  # type: ignore[list-item]
    database, schema, table = parts
    return TableName(table, schema, database)  # type: ignore[arg-type]


__all__ = ["TableName", "parse_identifier", "parse_table_name", "quote", "split_name"]
