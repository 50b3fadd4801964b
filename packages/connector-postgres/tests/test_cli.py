"""The command line with a Postgres recipe: the shipped seed recipe, and one clear error per mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from dataloader.cli import cli
from dataloader_postgres.testing import start_cluster

REPO = Path(__file__).resolve().parents[3]
RECIPES = REPO / "examples" / "recipes"


@pytest.fixture
def env(monkeypatch, pg_params, tmp_path):
    """The seed recipe's environment pointing at the test database; commands run in ``tmp_path``."""
    monkeypatch.setenv("DATALOADER_PG_HOST", str(pg_params.get("host", "127.0.0.1")))
    monkeypatch.setenv("DATALOADER_PG_PORT", str(pg_params.get("port", 5432)))
    monkeypatch.setenv("DATALOADER_PG_DATABASE", pg_params["dbname"])
    monkeypatch.setenv("DATALOADER_PG_USER", pg_params.get("user", "postgres"))
    monkeypatch.setenv("DATALOADER_PG_PASSWORD", pg_params.get("password", ""))
    monkeypatch.setenv("DATALOADER_PG_SSLMODE", "disable")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


def test_seed_recipe_loads_postgres_into_duckdb_with_transforms_and_merge(pg, env, table_name):
    duckdb = pytest.importorskip("duckdb")
    if not os.environ.get("CI"):
        pytest.importorskip("dataloader_duckdb")
    with pg.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {table_name} (id int PRIMARY KEY, fname text, lname text, signup_date text, "
            "lifetime_value text, updated_at timestamptz)"
        )
        cur.execute(
            f"INSERT INTO {table_name} VALUES (1, 'Ada', 'Lovelace', '2024-01-05', '120.50', '2024-06-01T00:00Z'), "
            "(2, 'Alan', 'Turing', '2024-02-10', '99.99', '2024-06-01T00:00Z')"
        )
    warehouse = env / "warehouse.duckdb"
    args = [str(RECIPES / "postgres_to_duckdb.yaml"), "--var", f"source_table=public.{table_name}",
            "--var", f"warehouse={warehouse}", "--state-dir", str(env / "state")]
    first = _run(*args)
    assert first.exit_code == 0, first.output
    with pg.cursor() as cur:
        cur.execute(f"UPDATE {table_name} SET lifetime_value = '130.00', updated_at = '2024-07-01T00:00Z' WHERE id = 1")
        cur.execute(f"INSERT INTO {table_name} VALUES (3, 'Grace', 'Hopper', '2024-03-01', '5', '2024-07-01T00:00Z')")
    second = _run(*args)
    assert second.exit_code == 0, second.output
    with duckdb.connect(str(warehouse), read_only=True) as db:
        rows = db.execute(
            "SELECT id, first_name, last_name, signup_date::text, lifetime_value::text, loaded_by "
            "FROM dw.customers ORDER BY id"
        ).fetchall()
        types = dict(db.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'customers'").fetchall())
    assert rows == [
        (1, "Ada", "Lovelace", "2024-01-05", "130.00", "customers_to_duckdb"),
        (2, "Alan", "Turing", "2024-02-10", "99.99", "customers_to_duckdb"),
        (3, "Grace", "Hopper", "2024-03-01", "5.00", "customers_to_duckdb"),
    ]
    assert types["signup_date"] == "DATE" and types["lifetime_value"] == "DECIMAL(12,2)"


def _recipe(path: Path, source: dict, destination: dict) -> str:
    import yaml

    path.write_text(yaml.safe_dump({"name": "mistake", "source": source, "destination": destination}))
    return str(path)


def _assert_one_clear_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.count("error:") == 1, result.output
    text = result.output[result.output.index("error:"):]
    for needle in needles:
        assert needle in text, text
    assert "Traceback" not in result.output


def _table_exists(pg, name: str) -> bool:
    with pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",))
        return cur.fetchone()[0]


@pytest.fixture(scope="module")
def password_server():
    """A throwaway cluster that checks passwords (the shared server trusts everyone)."""
    try:
        cluster = start_cluster(auth="scram-sha-256", password="the-right-one")
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"cannot start a password-checking PostgreSQL cluster: {exc}")
        pytest.skip(f"cannot start a password-checking PostgreSQL cluster: {exc}")
    yield cluster
    cluster.stop()


def test_wrong_password_fails_once_with_the_server_message_and_no_password(pg, section, env, table_name, password_server):
    source = {"type": "postgres", "host": "127.0.0.1", "port": password_server.port, "user": "postgres",
              "database": "postgres", "password": "s3cret-wrong-pw", "table": "anything"}
    recipe = _recipe(env / "r.yaml", source, section(table=table_name))
    result = _run(recipe, "--state-dir", str(env / "state"))
    _assert_one_clear_error(result, "password authentication failed", "check `user` and `password`")
    assert "s3cret-wrong-pw" not in result.output
    assert not _table_exists(pg, table_name)


def test_unknown_host_fails_at_once_naming_the_host(pg, section, env, table_name):
    source = {**section(table="anything"), "host": "no-such-host.invalid", "connect_attempts": 5}
    recipe = _recipe(env / "r.yaml", source, section(table=table_name))
    _assert_one_clear_error(_run(recipe, "--state-dir", str(env / "state")), "no-such-host.invalid", "check `host`")
    assert not _table_exists(pg, table_name)


def test_missing_table_names_the_table(pg, section, env, table_name):
    recipe = _recipe(env / "r.yaml", section(table="public.no_such_table"), section(table=table_name))
    _assert_one_clear_error(_run(recipe, "--state-dir", str(env / "state")), "public.no_such_table does not exist")
    assert not _table_exists(pg, table_name)


def test_merge_without_merge_keys_is_refused_before_anything_runs(pg, section, env, table_name):
    with pg.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name}_src AS SELECT 1 AS id")
    recipe = _recipe(env / "r.yaml", section(table=f"{table_name}_src"), section(table=table_name, write_mode="merge"))
    _assert_one_clear_error(_run(recipe, "--state-dir", str(env / "state")), "merge_keys")
    assert not _table_exists(pg, table_name)


def test_render_masks_the_password(env):
    os.environ["DATALOADER_PG_PASSWORD"] = "hunter2-visible?"
    result = CliRunner().invoke(cli, ["render", str(RECIPES / "postgres_to_duckdb.yaml")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "hunter2-visible?" not in result.output
