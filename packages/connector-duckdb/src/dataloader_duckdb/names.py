"""SQL identifiers: every name dataloader sends to DuckDB goes through :func:`quote_ident`.

Recipe authors write ``table: customers`` or ``table: dw.customers``; a part that itself contains a
dot is written in double quotes (``table: '"my.schema"."odd table"'``). Inside a part, capitals,
spaces and quote characters are kept as they are.

The SQL the connector sends always names all three parts, ``"catalog"."schema"."table"``
(:meth:`TableName.in_catalog`): DuckDB names a database's catalog after its file, so in
``dw.duckdb`` a two-part ``dw.customers`` could mean catalog ``dw``, table ``customers`` as well as
schema ``dw``, and DuckDB refuses it as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (embedded double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A table, optionally qualified by its schema and its catalog (the attached database)."""

    name: str
    schema: str | None = None
    catalog: str | None = None
    #: How the recipe wrote the name, for messages (a qualified name keeps the recipe's spelling).
    written: str | None = field(default=None, compare=False)

    def in_catalog(self, catalog: str, default_schema: str) -> TableName:
        """This table with every part spelled out: the catalog, and the default schema if none was given."""
        return TableName(self.name, self.schema or default_schema, catalog, written=str(self))

    @property
    def sql(self) -> str:
        return ".".join(quote_ident(part) for part in (self.catalog, self.schema, self.name) if part is not None)

    def __str__(self) -> str:
        if self.written is not None:
            return self.written
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
