"""The dataloader command line (everything but ``run``), through click's runner and the real script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from dataloader import __version__
from dataloader.cli import cli
from dataloader.state import LocalStateBackend
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

RECIPES = Path(__file__).parent / "recipes"
BAD = RECIPES / "bad"


@pytest.fixture
def invoke(memory_host, monkeypatch):  # noqa: F811
    """Run the CLI in-process with only the built-ins and the fake memory plugin registered."""
    monkeypatch.delenv("DL_TEST_DB_PASSWORD", raising=False)
    monkeypatch.delenv("DL_TEST_PORT", raising=False)
    monkeypatch.delenv("DATALOADER_STATE_DIR", raising=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


# -- bad input: exit 1, one line, no traceback --------------------------------------------
BAD_INPUTS = {
    "malformed.yaml": "invalid YAML at line 5, column 12",
    "missing_parent.yaml": "extends: parent recipe '../nowhere/parent.yaml' not found",
    "unset_env.yaml": "source.password: environment variable 'DL_TEST_SURELY_UNSET_PASSWORD' is not set",
    "unknown_connector.yaml": "source.type: unknown connector 'memroy'; did you mean 'memory'?",
    "unknown_transform.yaml": "transform.steps.0.type: unknown transform 'uper'; did you mean 'upper'?",
    "unknown_state_backend.yaml": "state.backend: unknown state backend 'locl'; did you mean 'local'?",
    "unknown_key.yaml": "source.hots: unknown key (allowed: type, incremental",
    "unsupported_write_mode.yaml": "destination.write_mode: memory does not support write mode 'merge'; memory supports write modes: append, overwrite",
}


@pytest.mark.parametrize("command", ["validate", "render", "run"])
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_recipe_gives_one_line_and_exit_1(invoke, command, name):
    result = invoke(command, BAD / name)
    assert result.exit_code == 1
    output = result.output.strip().splitlines()
    assert len(output) == 1, result.output
    assert BAD_INPUTS[name] in output[0]
    assert output[0].startswith(str(BAD / name)) or output[0].startswith(f"error: {BAD / name}")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["validate", "render", "run"])
def test_missing_recipe_file_gives_one_line_and_exit_1(invoke, tmp_path, command):
    result = invoke(command, tmp_path / "absent.yaml")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"{'error: ' if command != 'validate' else ''}{tmp_path / 'absent.yaml'}: recipe file not found"
    ]


def test_extends_cycle_gives_one_line_listing_the_cycle(invoke):
    result = invoke("validate", RECIPES / "cycle/a.yaml")
    assert result.exit_code == 1
    # b.yaml is the file whose extends closes the cycle
    assert (
        result.output.strip()
        == f"{RECIPES / 'cycle/b.yaml'}:1: extends: cycle in extends chain: a.yaml -> b.yaml -> a.yaml"
    )


def test_wrong_value_types_give_one_line_each(invoke):
    result = invoke("validate", BAD / "wrong_type.yaml")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["source.port", "runtime.batch_size"]


def test_stale_delete_path_is_a_warning_and_exit_0(invoke):
    result = invoke("validate", BAD / "stale_delete.yaml")
    assert result.exit_code == 0
    assert "warning: " in result.output and "path 'destination.merge_keys' does not exist" in result.output


# -- validate -----------------------------------------------------------------------------
def test_validate_reports_every_file_and_fails_if_any_is_invalid(invoke):
    result = invoke("validate", RECIPES / "valid.yaml", BAD / "unknown_key.yaml", BAD / "wrong_type.yaml")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{RECIPES / 'valid.yaml'}: ok"
    # file:line: key: message, the line of the key in the file that set it
    assert lines[1].startswith(f"{BAD / 'unknown_key.yaml'}:5: source.hots: unknown key")
    assert lines[2].startswith(f"{BAD / 'wrong_type.yaml'}:2: source.port: ")
    assert lines[3].startswith(f"{BAD / 'wrong_type.yaml'}:4: runtime.batch_size: ")
    assert len(lines) == 4


def test_validate_passes_for_valid_recipes(invoke):
    result = invoke("validate", RECIPES / "valid.yaml", RECIPES / "chain/team/jobs/child.yaml")
    assert result.exit_code == 0, result.output


def test_validate_takes_vars(invoke, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nsource: {type: memory, table: \"{{ var('t') }}\"}\ndestination: {type: memory, table: b}\n"
    )
    assert invoke("validate", recipe).exit_code == 1
    assert invoke("validate", recipe, "--var", "t=x").exit_code == 0


def test_malformed_var_is_a_usage_error(invoke):
    result = invoke("validate", RECIPES / "valid.yaml", "--var", "novalue")
    assert result.exit_code == 2
    assert "expected KEY=VALUE" in result.output


# -- render -------------------------------------------------------------------------------
def test_render_masks_secrets_from_env_and_secret_named_keys(invoke, monkeypatch):
    monkeypatch.setenv("DL_TEST_DB_PASSWORD", "s3cr3t-value")
    result = invoke("render", RECIPES / "valid.yaml", "--var", "source_table=clients")
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(result.output)
    assert rendered["source"]["password"] == "********"
    assert rendered["destination"]["api_key"] == "********"
    assert rendered["source"]["table"] == "clients"
    assert rendered["destination"]["table"] == "load_customers_out"
    assert "s3cr3t-value" not in result.output and "plain-text-key" not in result.output


def test_render_json_shows_the_merged_chain(invoke):
    result = invoke("render", RECIPES / "chain/team/jobs/child.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    rendered = json.loads(result.output)
    assert rendered["name"] == "child"
    assert [s["columns"] for s in rendered["transform"]["steps"]] == [["name"], ["city"], ["email"]]
    assert "extends" not in rendered and "delete" not in rendered
    assert "merge_keys" not in rendered["destination"]


# -- list-* -------------------------------------------------------------------------------
def test_list_connectors_json_has_distribution_and_capabilities(invoke):
    result = invoke("list-connectors", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == {"memory", "readonly"}
    memory = rows["memory"]
    assert (memory["distribution"], memory["version"]) == ("fake-memory-dist", "9.9")
    assert (memory["read"], memory["write"]) == (True, True)
    assert memory["write_modes"] == ["append", "overwrite"]
    assert memory["incremental"] == ["cursor"]
    assert rows["readonly"]["write"] is False


def test_list_connectors_table(invoke):
    result = invoke("list-connectors")
    assert result.exit_code == 0
    assert "memory" in result.output and "fake-memory-dist" in result.output and "append, overwrite" in result.output


def test_list_transforms_and_state_backends_json(invoke):
    transforms = json.loads(invoke("list-transforms", "--json").output)
    assert {
        "name": "upper",
        "distribution": "fake-memory-dist",
        "version": "9.9",
        "plugin": "fake-memory",
        "options": ["columns"],
    } in transforms
    backends = json.loads(invoke("list-state-backends", "--json").output)
    assert [(b["name"], b["distribution"], b["options"]) for b in backends] == [("local", "dataloader", ["state_dir"])]
    assert json.loads(invoke("list-formats", "--json").output) == []


def test_broken_plugin_is_a_warning_naming_its_distribution(invoke, memory_host):  # noqa: F811
    from dataloader.plugins import PluginFailure

    memory_host.failures.append(
        PluginFailure("brokenconn", "dataloader-connector-broken", "0.3", "ImportError: no driver")
    )
    memory_host._registry = None
    result = invoke("list-connectors", "--json")
    assert result.exit_code == 0
    assert "warning: plugin 'brokenconn' from dataloader-connector-broken 0.3 failed to load" in result.output


# -- state --------------------------------------------------------------------------------
def test_show_and_reset_state(invoke, tmp_path):
    LocalStateBackend(tmp_path).save("orders", {"cursor_values": {"id": 7}})
    shown = invoke("show-state", "orders", "--state-dir", tmp_path)
    assert shown.exit_code == 0
    assert json.loads(shown.output) == {"cursor_values": {"id": 7}}
    refused = CliRunner().invoke(cli, ["reset-state", "orders", "--state-dir", str(tmp_path)], input="n\n")
    assert refused.exit_code == 1
    assert (tmp_path / "orders.json").exists()
    reset = invoke("reset-state", "orders", "--state-dir", tmp_path, "--yes")
    assert reset.exit_code == 0
    assert not (tmp_path / "orders.json").exists()
    assert "no state saved for 'orders'" in invoke("show-state", "orders", "--state-dir", tmp_path).output


def test_state_dir_comes_from_the_environment(invoke, tmp_path, monkeypatch):
    LocalStateBackend(tmp_path).save("orders", {"metadata": {"a": 1}})
    monkeypatch.setenv("DATALOADER_STATE_DIR", str(tmp_path))
    assert json.loads(invoke("show-state", "orders").output) == {"metadata": {"a": 1}}


def test_corrupt_state_file_is_one_error_line(invoke, tmp_path):
    (tmp_path / "orders.json").write_text("{not json")
    result = invoke("show-state", "orders", "--state-dir", tmp_path)
    assert result.exit_code == 1
    assert result.output.startswith("error: state file") and "Traceback" not in result.output


# -- init, --version, --debug -------------------------------------------------------------
def test_init_scaffolds_a_project_and_refuses_to_overwrite(invoke, tmp_path):
    result = invoke("init", tmp_path / "proj")
    assert result.exit_code == 0, result.output
    project = tmp_path / "proj"
    recipe = yaml.safe_load((project / "recipes/quickstart.yaml").read_text())
    # relative to the recipe file (recipes/), like extends:
    assert recipe["source"] == {"type": "filestore", "path": "../data/customers.csv", "format": "csv"}
    assert recipe["destination"]["type"] == "duckdb" and recipe["destination"]["write_mode"] == "overwrite"
    assert (project / "data/customers.csv").read_text().startswith("id,first_name")
    assert (project / "README.md").exists()
    again = invoke("init", project)
    assert again.exit_code == 1
    assert again.output.startswith("error: not overwriting existing files")
    assert invoke("init", project, "--force").exit_code == 0


def test_version(invoke):
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_debug_shows_the_traceback(invoke):
    result = invoke("--debug", "validate", BAD / "unknown_key.yaml")
    assert result.exit_code == 1  # validate reports problems itself, even with --debug
    result = invoke("--debug", "show-state", "../bad")
    assert result.exit_code == 1
    assert "Traceback" in result.output and "error: invalid recipe name for state" in result.output


def test_unexpected_exception_is_one_line_with_a_hint(invoke, monkeypatch):
    import dataloader.scaffold

    def explode(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(dataloader.scaffold, "scaffold", explode)
    result = invoke("init", "somewhere")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: unexpected ZeroDivisionError: boom",
        "rerun with --debug for the traceback",
    ]


def test_unknown_command_is_a_usage_error(invoke):
    assert invoke("frobnicate").exit_code == 2


# -- the installed script -----------------------------------------------------------------
def dataloader_script() -> str:
    script = Path(sys.executable).parent / "dataloader"
    found = str(script) if script.exists() else shutil.which("dataloader")
    if found is None:
        pytest.fail("the dataloader script is not installed in this environment")
    return found


def test_installed_script_reports_a_malformed_recipe_in_one_line():
    proc = subprocess.run(
        [dataloader_script(), "validate", str(BAD / "malformed.yaml")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert (
        proc.stdout.strip()
        == f"{BAD / 'malformed.yaml'}: invalid YAML at line 5, column 12: expected ',' or ']', but got ':'"
    )
    assert "Traceback" not in proc.stderr


def test_installed_script_suggests_installing_an_unknown_connector(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsource: {type: zzqq, table: a}\ndestination: {type: zzqq}\n")
    proc = subprocess.run(
        [dataloader_script(), "run", str(recipe)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "source.type: unknown connector 'zzqq'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".state").exists()


def test_installed_script_version_and_list_state_backends():
    script = dataloader_script()
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and __version__ in version.stdout
    listed = subprocess.run([script, "list-state-backends", "--json"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0
    assert "local" in [row["name"] for row in json.loads(listed.stdout)]


def test_init_project_runs_with_the_real_duckdb_and_filestore_connectors(tmp_path):
    for module in ("dataloader.engine", "dataloader_duckdb", "dataloader_filestore"):
        pytest.importorskip(module, reason=f"{module} is not installed here yet")
    duckdb = pytest.importorskip("duckdb")
    script = dataloader_script()
    project = tmp_path / "proj"
    assert subprocess.run([script, "init", str(project)], capture_output=True, timeout=60).returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in ("DATALOADER_STATE_DIR", "QUICKSTART_DATABASE")}
    proc = subprocess.run(
        [script, "run", "recipes/quickstart.yaml"], capture_output=True, text=True, timeout=120, cwd=project, env=env
    )
    assert proc.returncode == 0, proc.stderr
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from customers").fetchone() == (10,)


def test_third_party_plugin_is_discovered_in_a_fresh_venv(tmp_path):
    """Core installed from its folder (not editable) plus a plugin wheel written from the contract."""
    core = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(core)], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(core / "tests" / "example_plugin")], check=True, timeout=300)
    script = str(venv / "bin" / "dataloader")
    listed = subprocess.run([script, "list-connectors", "--json"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["example"]["distribution"] == "dataloader-connector-example"
    assert rows["example"]["version"] == "1.2.3"
    out = tmp_path / "out.jsonl"
    recipe = tmp_path / "third_party.yaml"
    recipe.write_text(
        "name: third_party\nsource: {type: example, rows: 25}\n"
        "transform:\n  steps:\n"
        "    - {type: rename_columns, mapping: {label: text}}\n"
        "    - {type: add_column, name: origin, value: '{{ recipe.name }}'}\n"
        f"destination: {{type: example, path: '{out}'}}\n",
        encoding="utf-8",
    )
    run = subprocess.run([script, "run", str(recipe)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["n"] for line in lines] == list(range(25))
    assert lines[3] == {"n": 3, "text": "row 3", "origin": "third_party"}


def test_render_masks_passwords_inside_urls_and_passphrases():
    from dataloader.cli import mask_secrets

    masked = mask_secrets(
        {"source": {"dsn": "postgresql://bob:hunter2@db:5432/x", "path": "s3://bucket/a/*.csv", "private_key_passphrase": "p"}},
        set(),
    )
    assert masked["source"] == {
        "dsn": "postgresql://bob:********@db:5432/x",
        "path": "s3://bucket/a/*.csv",
        "private_key_passphrase": "********",
    }
