"""The recipe's schema: section through the CLI against a real PostgreSQL table (docs/schema.md)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner
from dataloader.cli import cli


def _recipe(tmp_path, section, source, target, evolution):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pg_schema",
        "source": section(table=f"public.{source}"),
        "destination": section(table=f"public.{target}"),
        "schema": {"evolution": evolution},
    }))
    return str(path)


def _cli(tmp_path, *args):
    result = CliRunner().invoke(cli, [*args], catch_exceptions=False)
    return result.exit_code, result.output


def _columns(pg, table):
    with pg.cursor() as cur:
        cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position", (table,))
        return cur.fetchall()


def _execute(pg, *statements: str) -> None:
    with pg.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def _first_load(pg, section, table_name, tmp_path, columns: str, values: str, evolution: dict) -> tuple[str, str, str]:
    """(source, target, recipe): a source table made and loaded once into its target."""
    source, target = f"{table_name}_src", f"{table_name}_dst"
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {source} ({columns})")
        cur.execute(f"INSERT INTO {source} VALUES {values}")
    recipe = _recipe(tmp_path, section, source, target, evolution)
    assert _cli(tmp_path, "run", recipe)[0] == 0
    return source, target, recipe


def test_manual_refuses_then_auto_widens_int_to_bigint_and_adds_a_column(pg, section, table_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, target, recipe = _first_load(
        pg, section, table_name, tmp_path, "id integer, name text", "(1, 'a'), (2, 'b')", {"mode": "manual"}
    )
    with pg.cursor() as cur:
        cur.execute(f"DROP TABLE {source}")
        cur.execute(f"CREATE TABLE {source} (id bigint, name text, email text)")
        cur.execute(f"INSERT INTO {source} VALUES (9000000000, 'c', 'c@x')")
    code, out = _cli(tmp_path, "check", recipe)
    assert code == 1
    assert f'ALTER TABLE public.{target} ADD COLUMN "email" text;' in out
    assert f'ALTER TABLE public.{target} ALTER COLUMN "id" SET DATA TYPE bigint;' in out
    assert _cli(tmp_path, "run", recipe)[0] == 1
    assert _columns(pg, target) == [("id", "integer"), ("name", "text")]

    code, out = _cli(tmp_path, "run", _recipe(tmp_path, section, source, target, {"mode": "auto"}))
    assert code == 0, out
    assert _columns(pg, target) == [("id", "bigint"), ("name", "text"), ("email", "text")]
    with pg.cursor() as cur:
        cur.execute(f"SELECT id, email FROM {target} ORDER BY id")
        assert cur.fetchall() == [(1, None), (2, None), (9000000000, "c@x")]
    code, out = _cli(tmp_path, "schema", "history", recipe)
    assert [line.split()[0] for line in out.splitlines()] == ["v1", "v2"]
    assert out.splitlines()[1].endswith("added email, type_changed id")


def test_int_to_text_is_refused_and_the_table_keeps_its_schema(pg, section, table_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, target, recipe = _first_load(pg, section, table_name, tmp_path, "id integer", "(1)", {"mode": "auto"})
    _execute(pg, f"ALTER TABLE {source} ALTER COLUMN id TYPE text", f"INSERT INTO {source} VALUES ('two')")
    code, out = _cli(tmp_path, "run", recipe)
    assert code == 1 and "column 'id' type int32 -> string: refuse" in out
    assert _columns(pg, target) == [("id", "integer")]


def test_nullable_to_not_null_is_reported_and_never_altered(pg, section, table_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, target, recipe = _first_load(pg, section, table_name, tmp_path, "id integer, name text", "(1, 'a')", {"mode": "manual"})
    _execute(pg, f"ALTER TABLE {source} ALTER COLUMN name SET NOT NULL", f"INSERT INTO {source} VALUES (2, 'b')")
    code, out = _cli(tmp_path, "check", recipe)
    assert code == 0, out
    assert "column 'name' nullable -> not null: none" in out, out
    code, out = _cli(tmp_path, "run", recipe)
    assert code == 0, out
    with pg.cursor() as cur:
        cur.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = %s AND column_name = 'name'", (target,))
        assert cur.fetchone() == ("YES",)  # reported, never altered
        cur.execute(f"SELECT count(*) FROM {target}")
        assert cur.fetchone() == (3,)  # append: the first row twice, then the new one


def test_a_not_null_source_column_records_one_version_across_runs(pg, section, table_name, tmp_path, monkeypatch):
    """The table the run creates is nullable: a NOT NULL key in the source is no drift on the next run."""
    monkeypatch.chdir(tmp_path)
    _, target, recipe = _first_load(pg, section, table_name, tmp_path, "id integer NOT NULL PRIMARY KEY", "(1)", {"mode": "manual"})
    code, out = _cli(tmp_path, "run", recipe)
    assert code == 0, out
    code, out = _cli(tmp_path, "schema", "history", recipe)
    mine = [line for line in out.splitlines() if f"public.{target}" in line]
    assert len(mine) == 1 and mine[0].endswith("initial"), out
