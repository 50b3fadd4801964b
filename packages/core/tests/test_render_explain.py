"""``dataloader render --explain``: each resolved value with the file:line or variable it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dataloader.cli import cli
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

RECIPES = Path(__file__).parent / "recipes"
CHAIN = RECIPES / "chain"


@pytest.fixture
def invoke(memory_host, monkeypatch):  # noqa: F811
    monkeypatch.delenv("DL_TEST_PORT", raising=False)
    monkeypatch.delenv("DL_TEST_DB_PASSWORD", raising=False)

    def run(*args: object):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


def by_key(output: str) -> dict[str, str]:
    return {line.split(": ", 1)[0]: line for line in output.strip().splitlines()}


def test_each_value_names_the_file_and_line_of_the_chain_that_set_it(invoke):
    result = invoke("render", "--explain", CHAIN / "team/jobs/child.yaml")
    assert result.exit_code == 0, result.output
    lines = by_key(result.output)
    assert lines["source.port"].endswith(f'2000  <- {CHAIN / "team/mid.yaml"}:4')
    assert lines["source.table"].endswith(f'"customers"  <- {CHAIN / "base.yaml"}:5')
    assert lines["destination.write_mode"].endswith(f'"overwrite"  <- {CHAIN / "team/jobs/child.yaml"}:5')
    assert lines["runtime.retries.max_attempts"].endswith(f"7  <- {CHAIN / 'team/mid.yaml'}:9")
    assert lines["runtime.retries.initial_delay"].endswith(f"1.0  <- {CHAIN / 'base.yaml'}:16")
    # steps concatenate along the chain: each keeps the line of the file that added it
    assert lines["transform.steps.0.columns.0"].endswith(f'"name"  <- {CHAIN / "base.yaml"}:9')
    assert lines["transform.steps.2.columns.0"].endswith(f'"email"  <- {CHAIN / "team/jobs/child.yaml"}:8')
    assert "destination.merge_keys" not in result.output  # deleted by the child


def test_templated_values_name_their_env_var_or_var_and_secrets_stay_masked(invoke, monkeypatch):
    monkeypatch.setenv("DL_TEST_DB_PASSWORD", "s3cr3t-value")
    result = invoke("render", "--explain", RECIPES / "valid.yaml", "--var", "source_table=clients")
    assert result.exit_code == 0, result.output
    lines = by_key(result.output)
    valid = RECIPES / "valid.yaml"
    assert lines["source.table"] == f'source.table: "clients"  <- {valid}:5, var source_table (--var)'
    assert lines["source.port"] == f'source.port: "5432"  <- {valid}:6, env_var DL_TEST_PORT (not set: the default)'
    assert lines["source.password"] == f'source.password: "********"  <- {valid}:7, env_var DL_TEST_DB_PASSWORD (set)'
    assert lines["destination.api_key"].startswith('destination.api_key: "********"')
    assert lines["destination.table"].endswith(", the recipe's name")
    assert "s3cr3t-value" not in result.output and "plain-text-key" not in result.output


def test_explain_as_json(invoke):
    result = invoke("render", "--explain", "--format", "json", RECIPES / "valid.yaml")
    items = {item["key"]: item for item in json.loads(result.output)}
    assert items["source.password"]["value"] == "********"
    assert items["source.password"]["rendered_from"] == [
        {"function": "env_var", "name": "DL_TEST_DB_PASSWORD", "set": False}
    ]
    assert items["source.password"]["line"] == 7


def test_explain_of_an_invalid_recipe_prints_its_problems_with_lines(invoke):
    result = invoke("render", "--explain", RECIPES / "bad" / "unknown_key.yaml")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {RECIPES / 'bad' / 'unknown_key.yaml'}:5: source.hots: unknown key (allowed: type, incremental, "
        "write_mode, merge_keys, table, port, password, api_key)"
    )
