"""What counts as a secret, and masking it by value wherever output leaves the process."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner
from dataloader import secrets
from dataloader.cli import cli
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _forget_secrets():
    """Each test starts and ends knowing no more secrets than before."""
    with secrets.session():
        yield


@pytest.mark.parametrize(
    "name",
    ["password", "DB_PASSWORD", "sslpassword", "passwd", "private_key", "private_key_passphrase", "apiKey",
     "api_key", "GITHUB_TOKEN", "secret", "client_secret", "credentials", "key", "ssh_key", "AWS_SECRET_ACCESS_KEY"],
)
def test_secret_names(name):
    assert secrets.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["KEYSPACE_DIR", "merge_keys", "primary_key", "partition_key", "password_file", "token_url", "token_env",
     "PWD", "HOME", "access_key_id", "token_count", "WAREHOUSE_DSN", "keyspace", "monkey"],
)
def test_harmless_names(name):
    assert not secrets.is_secret_name(name)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("postgresql://bob:hunter2@db/x", {"hunter2"}),
        ("postgresql://bob:pa/ss@word@db:5432/x", {"pa/ss@word", "pa", "ss", "word"}),
        ("postgresql://bob:p%40ss%2Fw@db/x", {"p%40ss%2Fw"}),
        ("postgresql://db/x?user=bob&password=q1w2e3&sslpassword=z9x8", {"q1w2e3", "z9x8"}),
        ("host=db port=5432 password=hunter2 user=bob", {"hunter2"}),
        ("host=db password='it\\'s a secret' user=bob", {"it's a secret"}),
        ("Server=db;Password=semi;colon", {"semi"}),
        ("s3://bucket/path/file.csv", set()),
        ("http://host:8080/a@b", {"8080/a", "a"}),  # "a" is too short to be hunted in text
        ("host=db port=5432 dbname=x", set()),
    ],
)
def test_passwords_inside_urls_and_connection_strings(text, found):
    assert set(secrets.secrets_in_text(text)) == found


def test_every_value_under_a_secret_key_is_found_but_not_its_neighbours():
    tree = {
        "source": {"password": "p4ssw0rd", "port": 5432, "credentials": {"type": "sa", "private_key": "k3y"}},
        "destination": {"merge_keys": ["id"], "primary_key": True, "dsn": "host=x password=inside"},
    }
    assert secrets.find_secrets(tree) == {"p4ssw0rd", "sa", "k3y", "inside"}


def test_a_secret_is_masked_in_every_spelling_a_message_may_quote():
    secrets.remember(["pa/ss@w%rd'1"])
    for spelled in ["pa/ss@w%rd'1", "pa%2Fss%40w%25rd%271", repr("pa/ss@w%rd'1")[1:-1], json.dumps("pa/ss@w%rd'1")[1:-1],
                    "pa/ss@w%rd\\'1"]:
        assert secrets.mask(f"error near {spelled} here") == "error near ******** here", spelled


def test_key_material_is_masked_line_by_line():
    key = "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\nQ2FuYXJ5IGtleSBtYXRlcmlhbA==\n-----END KEY-----\n"
    secrets.remember([key])
    assert secrets.mask("no such file: 'AAAAB3NzaC1yc2EAAAADAQAB'") == "no such file: '********'"
    assert "Q2Fu" not in secrets.mask(repr(key))


def test_short_values_are_not_hunted_in_free_text():
    secrets.remember(["abc"])
    assert secrets.mask("abc is fine") == "abc is fine"
    assert secrets.mask_tree({"password": "abc"}) == {"password": "********"}


def test_unknown_passwords_in_urls_and_pairs_are_masked_by_shape():
    text = "could not connect to postgresql://u:neverseen@h/db with password=alsonever and token_count=3"
    assert secrets.mask(text) == "could not connect to postgresql://u:********@h/db with password=******** and token_count=3"


def test_placeholders_in_hints_are_not_masked():
    hint = "pass --var api_token=VALUE, or set password=... or token=<your token>"
    assert secrets.mask(hint) == hint


def test_session_forgets_what_it_learnt():
    with secrets.session():
        secrets.remember(["learnt-in-session"])
        assert secrets.mask("learnt-in-session") == secrets.MASK
    assert secrets.mask("learnt-in-session") == "learnt-in-session"


def test_render_masks_a_dsn_from_an_env_var_of_a_harmless_name_by_value(memory_host, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WAREHOUSE_DSN", "host=db dbname=x password=rendered-secret")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nsource: {type: memory, table: \"{{ env_var('WAREHOUSE_DSN') }}\"}\n"
        "destination: {type: memory, table: out}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["render", str(recipe)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "table: host=db dbname=x password=********" in result.output
    assert "rendered-secret" not in result.output


def test_a_secret_in_an_int_field_is_not_echoed_by_the_parser(memory_host, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DB_PASSWORD", "not-a-port-secret")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nsource: {type: memory, table: t, port: \"{{ env_var('DB_PASSWORD') }}\"}\n"
        "destination: {type: memory, table: out}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    for args in (["validate", str(recipe)], ["--debug", "render", str(recipe)], ["run", str(recipe)]):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert "source.port" in result.output
        assert "not-a-port-secret" not in result.output, args


def test_log_records_and_hook_traces_are_masked(memory_host, tmp_path, monkeypatch, capsys):  # noqa: F811
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nsource: {type: memory, table: t, password: trace-secret}\ndestination: {type: memory, table: out}\n",
        encoding="utf-8",
    )

    @cli.command("log-recipe-secret", hidden=True)
    def log_recipe_secret() -> None:
        from dataloader.recipe import from_yaml

        from_yaml(recipe)
        logging.getLogger("dataloader.test").warning("connecting with trace-secret")

    try:
        result = CliRunner().invoke(cli, ["log-recipe-secret"], catch_exceptions=False)
    finally:
        cli.commands.pop("log-recipe-secret")
    assert "warning: connecting with ********" in result.output

    from dataloader.plugins import _write_trace

    secrets.remember(["trace-secret"])
    _write_trace("run_started recipe=Recipe(password='trace-secret')\n")
    assert capsys.readouterr().err == "[hook] run_started recipe=Recipe(password='********')\n"
