"""The small things a person sees running the CLI: one "started" line, a failed run's id, where
rejected rows went, tables that fit the terminal, messages in our words."""

from __future__ import annotations

import pyarrow as pa
import pytest
from click.testing import CliRunner
from dataloader.cli import cli
from test_recipe_fakes import TABLES, memory_host  # noqa: F401  (fixture)


@pytest.fixture
def invoke(memory_host, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("DATALOADER_STATE_DIR", raising=False)

    def run(*args: object, env: dict | None = None):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)

    return run


def recipe(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_started_is_printed_once_per_run(invoke, tmp_path):
    TABLES["src"] = pa.table({"id": [1, 2, 3]})
    path = recipe(tmp_path, "name: once\nsource: {type: memory, table: src}\ndestination: {type: memory, table: dst}\n")
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if "started run" in line] == [
        line for line in result.output.splitlines() if line.startswith("once: started run ")
    ]
    assert sum("started run" in line for line in result.output.splitlines()) == 1


def test_a_failed_run_prints_a_summary_with_its_run_id(invoke, tmp_path):
    TABLES["src"] = pa.table({"id": [1, 2, 3]})
    path = recipe(
        tmp_path,
        "name: broken\nsource: {type: memory, table: src}\ntransform: {steps: [{type: upper, columns: [id]}]}\n"
        "destination: {type: memory, table: dst}\n",
    )
    result = invoke("run", path)
    assert result.exit_code == 1
    summary = [line for line in result.output.splitlines() if line.startswith("broken: failed, ")]
    assert len(summary) == 1, result.output
    assert "(run " in summary[0]
    run_id = summary[0].split("(run ", 1)[1].split(")")[0]
    assert run_id in invoke("runs", "--json").output


def test_partial_success_says_where_the_rejected_rows_went(invoke, tmp_path):
    TABLES["people"] = pa.table({"id": [1, 2, 3], "name": ["ada", None, "alan"]})
    path = recipe(
        tmp_path,
        "name: partial\nsource: {type: memory, table: people}\ndestination: {type: memory, table: dst}\n"
        "quality_checks: [{column: name, check: not_null, action: dlq}]\n",
    )
    result = invoke("run", path)
    summary = [line for line in result.output.splitlines() if line.startswith("partial: partial_success")]
    assert len(summary) == 1, result.output
    assert "1 failed" in summary[0] and "; rejected rows in errors/partial/" in summary[0]
    where = summary[0].split("; rejected rows in ", 1)[1]
    assert (tmp_path / where).is_file()


def test_list_tables_fit_the_terminal_width(invoke):
    for width in (60, 100):
        result = invoke("list-transforms", env={"COLUMNS": str(width)})
        assert result.exit_code == 0
        assert max(len(line) for line in result.output.splitlines()) <= width, result.output


def test_unknown_keys_get_did_you_mean_and_errors_are_in_our_words(invoke, tmp_path):
    path = recipe(
        tmp_path,
        "name: t\nsorce: {}\nsource: {type: memory, tabel: a}\ndestination: {type: memory, table: b}\n"
        "quality_checks: [{column: a, check: not_null, actoin: dlq}]\n",
    )
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"{path}:2: sorce: unknown key; did you mean 'source'? (allowed: name, " in result.output
    assert f"{path}:3: source.tabel: unknown key; did you mean 'table'? (allowed: " in result.output
    assert "actoin: unknown key; did you mean 'action'? (allowed: column, check, action)" in result.output
    assert "Extra inputs" not in result.output and "Value error" not in result.output


def test_describe_shows_a_connectors_config_keys(invoke):
    result = invoke("describe", "memory", env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "connector 'memory' from fake-memory-dist 9.9"
    assert lines[1] == "read: yes, write: yes, write modes: append, overwrite, incremental: cursor"
    table = {line.split()[0]: line.split() for line in lines[3:]}
    assert table["table"][1:4] == ["str", "-", "yes"]
    assert table["port"][1:4] == ["int", "0", "no"]
    import json

    data = json.loads(invoke("describe", "upper", "--json").output)
    assert data["kind"] == "transform" and [k["key"] for k in data["keys"]] == ["columns"]
    missing = invoke("describe", "memroy")
    assert missing.exit_code == 1 and "did you mean 'memory'?" in missing.output


def test_an_unused_var_is_a_warning_for_run_and_render(invoke, tmp_path):
    TABLES["src"] = pa.table({"id": [1]})
    path = recipe(
        tmp_path, "name: v\nsource: {type: memory, table: \"{{ var('t') }}\"}\ndestination: {type: memory, table: d}\n"
    )
    for command in ("run", "render"):
        result = invoke(command, path, "--var", "t=src", "--var", "tabel=x")
        assert result.exit_code == 0, result.output
        assert "warning: --var tabel is not used: no recipe given reads var('tabel')" in result.output
        assert "--var t is" not in result.output


def json_lines(output: str) -> list[dict]:
    import json

    records = [json.loads(line) for line in output.strip().splitlines()]
    for record in records:
        assert {"ts", "level"} <= set(record), record
    return records


def test_log_format_json_covers_messages_warnings_and_errors(invoke, tmp_path):
    good = recipe(tmp_path, "name: g\nsource: {type: memory, table: a}\ndestination: {type: memory, table: b}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsource: {type: memory, tabel: a}\ndestination: {type: memory, table: b}\n")
    records = json_lines(invoke("--log-format", "json", "validate", good, "--var", "x=1").output)
    assert [(r["level"], r["message"]) for r in records] == [
        ("info", f"{good}: ok"),
        ("warning", "--var x is not used: no recipe given reads var('x')"),
    ]
    records = json_lines(invoke("--log-format", "json", "validate", bad).output)
    typo = [r for r in records if r.get("key") == "source.tabel"]
    assert typo and typo[0]["level"] == "error" and typo[0]["line"] == 2 and "did you mean 'table'" in typo[0]["message"]
    for args in (["render", bad], ["describe", "memroy"], ["run", bad], ["render", tmp_path / "absent.yaml"]):
        result = invoke("--log-format", "json", *args)
        assert result.exit_code == 1
        assert all(r["level"] == "error" for r in json_lines(result.output)), result.output
    listed = invoke("--log-format", "json", "list-transforms")
    assert {row["name"] for row in __import__("json").loads(listed.output)} >= {"cast", "upper"}
