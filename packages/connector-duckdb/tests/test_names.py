"""Table names in recipes: ``table``, ``schema.table``, quoted parts."""

from __future__ import annotations

import pytest
from dataloader_duckdb.names import TableName, parse_table_name, quote_ident


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("orders", TableName("orders")),
        ("dw.orders", TableName("orders", "dw")),
        ("My Schema.Odd Table", TableName("Odd Table", "My Schema")),
        ('"a.b"."c.d"', TableName("c.d", "a.b")),
        ('"say ""hi"""', TableName('say "hi"')),
        ('Odd "Quoted" Table', TableName('Odd "Quoted" Table')),
    ],
)
def test_parse_table_name(text: str, expected: TableName) -> None:
    assert parse_table_name(text) == expected


@pytest.mark.parametrize("text", ["a.b.c", "a.", ".a", '"open', '"a"b'])
def test_bad_table_names_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="table"):
        parse_table_name(text)


def test_identifiers_are_quoted_with_embedded_quotes_doubled() -> None:
    assert quote_ident('Odd "x"') == '"Odd ""x"""'
    assert TableName('t"1', "My Schema").sql == '"My Schema"."t""1"'


def test_a_qualified_name_spells_out_catalog_and_schema_but_reads_as_written() -> None:
    qualified = TableName("customers", "dw").in_catalog("dw", "main")
    assert qualified.sql == '"dw"."dw"."customers"'
    assert str(qualified) == "dw.customers"
    assert TableName("customers").in_catalog("main_db", "main").sql == '"main_db"."main"."customers"'
