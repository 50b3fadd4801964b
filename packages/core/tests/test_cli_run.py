"""``dataloader run``: loading, reporting, several recipes, --jobs, state dirs and exit codes.

Most tests drive the command with a small engine installed in place of ``dataloader.engine`` (it
moves rows between the in-test memory connectors and announces the documented events through the
``run_event`` hook, as the real engine does), so that they
exercise the CLI's own behaviour. ``test_run_through_the_real_engine`` runs the real engine.
"""

from __future__ import annotations

import io
import json
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from dataloader.cli import cli, state_backend_for
from dataloader.console import JsonReporter, LiveReporter, PlainReporter, choose_reporter
from dataloader.errors import ConnectorError
from dataloader.plugins import get_host, get_registry
from dataloader.recipe import Recipe
from dataloader.run.events import Observers, RunInfo
from dataloader.run.many import run_each
from dataloader.state import LocalStateBackend, State
from rich.console import Console
from test_recipe_fakes import TABLES, memory_host  # noqa: F401  (fixture)


@dataclass
class Event:
    kind: str
    recipe_name: str
    run_id: str
    rows_read: int = 0
    rows_written: int = 0
    total_estimate: int | None = None
    elapsed_s: float = 0.0
    message: str | None = None
    result: Any = None


@dataclass
class Result:
    status: str
    rows_read: int
    rows_written: int
    rows_failed: int
    duration_s: float
    run_id: str
    error: str | None = None


@dataclass
class EngineCalls:
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def engine(monkeypatch, memory_host):  # noqa: F811
    """A minimal engine in place of dataloader.engine: source -> destination, with events."""
    seen = EngineCalls()

    def run_recipe(recipe, state_backend=None, *, resume=False, full_refresh=False, on_event=None):
        seen.calls.append(
            {"recipe": recipe.name, "backend": state_backend, "resume": resume, "full_refresh": full_refresh}
        )
        run_id = f"run-{recipe.name}"
        observers, info = Observers(get_host()), RunInfo(recipe, run_id, "")

        def emit(event):
            observers.notify("run_event", run=info, event=event)
            if on_event is not None:
                on_event(event)

        started = time.monotonic()
        registry = get_registry()
        source = registry.get("connector", recipe.source.type).build(recipe.source)
        destination = registry.get("connector", recipe.destination.type).build(recipe.destination)
        state = State()
        total = source.estimate_total_records(state)
        emit(Event("run_started", recipe.name, run_id, total_estimate=total))
        read = 0
        destination.begin(None, recipe.destination.write_mode, state)
        for batch in source.read_batches(state):
            read += batch.row_count
            destination.write_batch(batch, state)
            emit(Event("progress", recipe.name, run_id, read, 0, total, time.monotonic() - started))
        destination.commit(state)
        emit(Event("committed", recipe.name, run_id, read, read, total, time.monotonic() - started))
        result = Result("success", read, read, 0, time.monotonic() - started, run_id)
        emit(Event("run_finished", recipe.name, run_id, read, read, total, result.duration_s, result=result))
        return result

    module = types.ModuleType("dataloader.engine")
    module.run_recipe = run_recipe

    def run_many(recipes, backend_for, *, jobs=1, **options):  # the real one's loop, over this module's run_recipe
        return run_each(recipes, backend_for, lambda *a, **k: module.run_recipe(*a, **k), jobs=jobs, **options)

    module.run_many = run_many
    monkeypatch.setitem(sys.modules, "dataloader.engine", module)
    return seen


def write_recipe(path: Path, name: str, source_table: str, dest_table: str, extra: str = "") -> Path:
    path.write_text(
        f"name: {name}\nsource: {{type: memory, table: {source_table}}}\n"
        f"destination: {{type: memory, table: {dest_table}, write_mode: overwrite}}\n{extra}",
        encoding="utf-8",
    )
    return path


def invoke(*args: Any):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def customers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATALOADER_STATE_DIR", raising=False)
    monkeypatch.delenv("CI", raising=False)
    TABLES["customers"] = pa.table({"id": [1, 2, 3], "name": ["ada", "grace", "alan"]})
    return write_recipe(tmp_path / "load.yaml", "load", "customers", "out")


def test_run_moves_rows_and_prints_a_summary(engine, customers):
    result = invoke("run", customers)
    assert result.exit_code == 0, result.output
    assert TABLES["out"].to_pydict() == {"id": [1, 2, 3], "name": ["ada", "grace", "alan"]}
    lines = result.output.strip().splitlines()
    assert lines[0] == "load: started run run-load"
    assert "load: committed 3 rows" in lines
    assert lines[-1].startswith("load: success, 3 rows read, 3 written, 0 failed in ")
    assert lines[-1].endswith("(run run-load)")


def test_run_json_log_format_prints_one_object_per_event(engine, customers):
    result = invoke("run", customers, "--log-format", "json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [e["kind"] for e in events] == ["run_started", "progress", "committed", "run_finished"]
    assert events[0]["total_estimate"] == 3
    assert events[-1]["result"]["status"] == "success"
    assert events[-1]["result"]["rows_written"] == 3
    assert {e["recipe"] for e in events} == {"load"}


def test_run_passes_resume_full_refresh_and_the_state_dir(engine, customers, tmp_path):
    result = invoke("run", customers, "--resume", "--full-refresh", "--state-dir", tmp_path / "st")
    assert result.exit_code == 0, result.output
    [call] = engine.calls
    assert (call["resume"], call["full_refresh"]) == (True, True)
    assert isinstance(call["backend"], LocalStateBackend)
    assert call["backend"].state_dir == tmp_path / "st"


def test_several_recipes_run_in_order_and_any_failure_exits_1(engine, customers, tmp_path):
    TABLES["other"] = pa.table({"id": [9]})
    second = write_recipe(tmp_path / "second.yaml", "second", "other", "out2")
    # a source that fails at run time (not at validation): the second recipe still runs
    broken = write_recipe(tmp_path / "broken.yaml", "broken", "customers", "out3")
    original = sys.modules["dataloader.engine"].run_recipe

    def failing(recipe, *args, **kwargs):
        if recipe.name == "broken":
            raise ConnectorError("memory table is locked; retry later", table="customers")
        return original(recipe, *args, **kwargs)

    sys.modules["dataloader.engine"].run_recipe = failing
    result = invoke("run", customers, broken, second)
    assert result.exit_code == 1
    assert [c["recipe"] for c in engine.calls] == ["load", "second"]
    assert "error: broken: memory table is locked; retry later" in result.output
    assert TABLES["out2"].num_rows == 1


def test_a_failed_status_exits_1(engine, customers):
    module = sys.modules["dataloader.engine"]
    module.run_recipe = lambda recipe, *a, **k: Result("failed", 3, 0, 3, 0.1, "r1", "too many failed rows")
    result = invoke("run", customers)
    assert result.exit_code == 1
    assert "load: failed, 3 rows read, 0 written, 3 failed" in result.output
    assert "too many failed rows" in result.output


def test_an_invalid_recipe_stops_every_run_before_it_starts(engine, customers, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsource: {type: memory}\ndestination: {type: memory, table: b}\n")
    result = invoke("run", customers, bad)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {bad}:2: source.table: required key is missing"
    assert engine.calls == []
    assert "out" not in TABLES


def test_jobs_runs_recipes_in_parallel_and_reports_each(engine, customers, tmp_path):
    TABLES["other"] = pa.table({"id": [9, 10]})
    second = write_recipe(tmp_path / "second.yaml", "second", "other", "out2")
    result = invoke("run", customers, second, "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert sorted(c["recipe"] for c in engine.calls) == ["load", "second"]
    summaries = [line for line in result.output.splitlines() if ": success, " in line]
    assert [s.split(":")[0] for s in summaries] == ["load", "second"]  # in the order given


def test_jobs_must_be_positive(engine, customers):
    assert invoke("run", customers, "--jobs", "0").exit_code == 2


def test_state_dir_precedence(memory_host, tmp_path, monkeypatch):  # noqa: F811
    data = {"name": "s", "source": {"type": "memory", "table": "a"}, "destination": {"type": "memory", "table": "b"}}
    plain = Recipe.from_dict(data)
    with_section = Recipe.from_dict({**data, "state": {"backend": "local", "state_dir": str(tmp_path / "recipe")}})
    monkeypatch.delenv("DATALOADER_STATE_DIR", raising=False)
    assert state_backend_for(plain, None).state_dir == Path(".state")
    monkeypatch.setenv("DATALOADER_STATE_DIR", str(tmp_path / "env"))
    assert state_backend_for(plain, None).state_dir == tmp_path / "env"
    assert state_backend_for(with_section, None).state_dir == tmp_path / "recipe"
    assert state_backend_for(with_section, str(tmp_path / "flag")).state_dir == tmp_path / "flag"


def test_live_reporter_shows_rows_and_rate():
    out = io.StringIO()
    reporter = LiveReporter(Console(file=out, force_terminal=True, width=120))
    reporter.on_event(Event("run_started", "load", "r1", total_estimate=10))
    reporter.on_event(Event("progress", "load", "r1", rows_read=5, total_estimate=10, elapsed_s=1.0))
    reporter.on_event(Event("run_finished", "load", "r1", rows_read=10, rows_written=10, elapsed_s=2.0))
    reporter.close()
    assert "load" in out.getvalue() and "10 rows" in out.getvalue()


def test_run_through_the_real_engine(memory_host, customers, tmp_path):  # noqa: F811
    engine = pytest.importorskip("dataloader.engine", reason="dataloader.engine has not landed yet")
    assert hasattr(engine, "run_recipe")
    recipe = tmp_path / "real.yaml"
    recipe.write_text(
        "name: real\nsource: {type: memory, table: customers}\n"
        "transform:\n  steps:\n    - {type: upper, columns: [name]}\n"
        "destination: {type: memory, table: real_out, write_mode: overwrite}\n"
        "runtime: {batch_size: 2}\n"
    )
    result = invoke("run", recipe, "--state-dir", tmp_path / "state", "--log-format", "json")
    assert result.exit_code == 0, result.output
    assert TABLES["real_out"].column("name").to_pylist() == ["ADA", "GRACE", "ALAN"]
    finished = json.loads(result.output.strip().splitlines()[-1])
    assert finished["kind"] == "run_finished"
    assert finished["result"]["rows_written"] == 3


@pytest.mark.parametrize(
    ("log_format", "terminal", "ci", "expected"),
    [
        ("json", True, False, JsonReporter),
        ("text", True, False, LiveReporter),
        ("text", True, True, PlainReporter),
        ("text", False, False, PlainReporter),
    ],
)
def test_reporter_choice(log_format, terminal, ci, expected):
    reporter = choose_reporter(log_format, terminal=terminal, ci=ci)
    try:
        assert isinstance(reporter, expected)
    finally:
        reporter.close()


def test_plain_reporter_thins_progress_lines(capsys):
    reporter = PlainReporter()
    for second in range(12):
        reporter.on_event(Event("progress", "load", "r1", rows_read=second * 10, elapsed_s=float(second)))
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" rows read")[0] for line in lines] == ["load: 0", "load: 50", "load: 100"]
