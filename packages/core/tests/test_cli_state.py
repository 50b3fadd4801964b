"""show-state, reset-state, runs and `state migrate` for any backend, from a recipe file or a URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from dataloader.cli import cli
from dataloader.run.ledger import LeaseHolder
from dataloader.state import LocalStateBackend
from test_recipe_fakes import memory_host  # noqa: F401  (fixture)

RECIPES = Path(__file__).parent / "recipes"
STATE = {"version": 1, "cursor_values": {"id": 7}, "watermarks": {}, "checkpoints": {}, "metadata": {"last_run_id": "r-1"}}


@pytest.fixture
def invoke(memory_host, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.delenv("DATALOADER_STATE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    """The valid recipe with its state in a folder of its own (``state:`` section)."""
    data = yaml.safe_load((RECIPES / "valid.yaml").read_text())
    data["state"] = {"backend": "local", "state_dir": str(tmp_path / "recipe-state")}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def seeded(directory: Path, name: str = "load_customers", state: dict | None = None) -> LocalStateBackend:
    backend = LocalStateBackend(directory)
    backend.save(name, state or STATE)
    return backend


def test_show_state_of_a_recipe_file_reads_the_recipes_backend(invoke, recipe_file: Path, tmp_path: Path) -> None:
    seeded(tmp_path / "recipe-state")
    result = invoke("show-state", recipe_file)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == STATE


def test_show_state_with_a_state_url_reads_that_backend(invoke, tmp_path: Path) -> None:
    seeded(tmp_path / "elsewhere")
    result = invoke("show-state", "load_customers", "--state", f"local://{tmp_path / 'elsewhere'}")
    assert json.loads(result.output) == STATE
    missing = invoke("show-state", "load_customers", "--state", str(tmp_path / "empty"))
    assert missing.exit_code == 0 and "no state saved for 'load_customers'" in missing.output


def test_reset_state_of_a_recipe_file_deletes_in_the_recipes_backend(invoke, recipe_file: Path, tmp_path: Path) -> None:
    backend = seeded(tmp_path / "recipe-state")
    result = invoke("reset-state", recipe_file, "--yes")
    assert result.exit_code == 0 and "deleted the state of 'load_customers'" in result.output
    assert backend.load("load_customers") == {}


def test_reset_state_is_refused_while_a_run_holds_the_lease(invoke, recipe_file: Path, tmp_path: Path) -> None:
    backend = seeded(tmp_path / "recipe-state")
    lease = backend.acquire_lease("load_customers", LeaseHolder.current("run-busy"), 60)
    try:
        result = invoke("reset-state", recipe_file, "--yes")
    finally:
        lease.release()
    assert result.exit_code == 1
    assert "reset-state refused" in result.output and "run-busy" in result.output
    assert backend.load("load_customers") == STATE


def test_migrate_copies_a_recipes_state_between_backends(invoke, tmp_path: Path) -> None:
    seeded(tmp_path / "old")
    result = invoke("state", "migrate", "--from", tmp_path / "old", "--to", f"local://{tmp_path / 'new'}", "load_customers")
    assert result.exit_code == 0, result.output
    assert "copied the state of 'load_customers'" in result.output
    assert LocalStateBackend(tmp_path / "new").load("load_customers") == STATE


def test_migrate_refuses_to_replace_a_different_state_without_force(invoke, tmp_path: Path) -> None:
    seeded(tmp_path / "old")
    other = {**STATE, "cursor_values": {"id": 99}}
    seeded(tmp_path / "new", state=other)
    refused = invoke("state", "migrate", "--from", tmp_path / "old", "--to", tmp_path / "new", "load_customers")
    assert refused.exit_code == 1 and "--force" in refused.output
    assert LocalStateBackend(tmp_path / "new").load("load_customers") == other
    forced = invoke("state", "migrate", "--from", tmp_path / "old", "--to", tmp_path / "new", "--force", "load_customers")
    assert forced.exit_code == 0
    assert LocalStateBackend(tmp_path / "new").load("load_customers") == STATE


def test_migrate_of_a_recipe_without_state_says_so(invoke, tmp_path: Path) -> None:
    result = invoke("state", "migrate", "--from", tmp_path / "old", "--to", tmp_path / "new", "nothing_here")
    assert result.exit_code == 1 and "no state saved for 'nothing_here'" in result.output


def test_unknown_state_url_scheme_is_one_clear_line_without_the_password(invoke) -> None:
    result = invoke("show-state", "x", "--state", "redis://user:hunter2@host/0")
    assert result.exit_code == 1
    assert "unknown state URL scheme 'redis'" in result.output and "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_runs_of_a_recipe_file_says_who_holds_the_lease(invoke, recipe_file: Path, tmp_path: Path) -> None:
    backend = seeded(tmp_path / "recipe-state")
    idle = invoke("runs", recipe_file)
    assert idle.exit_code == 0, idle.output
    assert "no run holds the lease" in idle.output and "last committed run: r-1" in idle.output
    lease = backend.acquire_lease("load_customers", LeaseHolder.current("run-busy"), 60)
    try:
        busy = invoke("runs", recipe_file)
    finally:
        lease.release()
    assert "running now: run run-busy" in busy.output


def test_runs_with_a_state_url_needs_a_recipe_name(invoke, tmp_path: Path) -> None:
    result = invoke("runs", "--state", tmp_path)
    assert result.exit_code == 2 and "--recipe" in result.output
