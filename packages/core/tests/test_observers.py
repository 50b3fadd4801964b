"""One observer channel: reporters, ``on_event`` and plugins all hear a run through the lifecycle hooks."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from dataloader import hookimpl
from dataloader.cli import cli
from dataloader.console import JsonReporter, LiveReporter, Observer, PlainReporter
from dataloader.engine import run_many, run_recipe
from dataloader.errors import DataLoaderError
from dataloader.recipe import Recipe
from dataloader.run.events import observing
from dataloader.state import LocalStateBackend
from dataloader.testing import MEMORY_TABLES, kit_host


class Listener:
    """A plugin observing runs: every lifecycle hook, in the order it hears them."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def _note(self, hook: str, run: Any, what: str) -> None:
        with self.lock:
            self.heard.append((hook, run.run_id, what))

    @hookimpl
    def run_started(self, run):
        self._note("run_started", run, run.recipe.name)

    @hookimpl
    def batch_written(self, run, batch, rows):
        self._note("batch_written", run, str(rows))

    @hookimpl
    def run_event(self, run, event):
        self._note("run_event", run, event.kind)

    @hookimpl
    def run_finished(self, run, result):
        self._note("run_finished", run, result.status)


class Broken:
    """An observer that fails on every call."""

    calls = 0

    @hookimpl
    def run_event(self, run, event):
        Broken.calls += 1
        raise RuntimeError("observer bug")

    @hookimpl
    def run_finished(self, run, result):
        raise RuntimeError("observer bug")


def recipe(name: str = "observed", table: str = "src", out: str = "out") -> Recipe:
    return Recipe.from_dict(
        {
            "name": name,
            "source": {"type": "contract_memory", "table": table, "batch_rows": 2},
            "destination": {"type": "contract_memory", "table": out},
            "runtime": {"batch_size": 2},
        }
    )


@pytest.fixture
def host():
    with kit_host() as installed:
        MEMORY_TABLES["src"] = pa.table({"id": list(range(5))})
        yield installed


def test_a_plugin_and_on_event_hear_the_same_events(host, tmp_path):
    listener = Listener()
    host.register(listener, name="listener")
    seen: list[str] = []
    result = run_recipe(recipe(), LocalStateBackend(tmp_path), host=host, history=False, on_event=lambda e: seen.append(e.kind))
    events = [what for hook, _, what in listener.heard if hook == "run_event"]
    assert events == seen
    assert seen[0] == "run_started" and seen[-1] == "run_finished" and "committed" in seen
    assert seen.count("progress") == 3  # 5 rows in batches of 2
    hooks = [hook for hook, _, _ in listener.heard]
    assert hooks[0] == "run_started" and hooks[-2:] == ["run_finished", "run_event"]
    assert {run_id for _, run_id, _ in listener.heard} == {result.run_id}


def test_a_failing_observer_neither_breaks_the_run_nor_silences_the_others(host, tmp_path, caplog):
    Broken.calls = 0
    listener = Listener()
    host.register(listener, name="listener")
    host.register(Broken(), name="broken")  # newer: called before the listener
    seen: list[str] = []
    result = run_recipe(recipe(), LocalStateBackend(tmp_path), host=host, history=False, on_event=lambda e: seen.append(e.kind))
    assert result.status == "success" and MEMORY_TABLES["out"].num_rows == 5
    assert Broken.calls == len(seen) > 0
    assert [what for hook, _, what in listener.heard if hook == "run_event"] == seen
    assert "the run_event hook of plugin 'broken' failed: observer bug" in caplog.text


def test_on_event_hears_only_its_own_run_when_runs_go_on_at_once(host, tmp_path):
    MEMORY_TABLES["other"] = pa.table({"id": list(range(7))})
    heard: dict[str, set[str]] = {"a": set(), "b": set()}
    barrier = threading.Barrier(2)

    def start(name: str):
        def callback(event):
            if event.kind == "run_started":
                try:
                    barrier.wait(timeout=10)  # both runs are under way before either goes on
                except threading.BrokenBarrierError:
                    pass
            heard[name].add(event.recipe_name)

        return callback

    def one(name: str, table: str):
        return run_recipe(recipe(name, table, f"out_{name}"), LocalStateBackend(tmp_path), host=host, history=False, on_event=start(name))

    threads = [threading.Thread(target=one, args=args) for args in (("a", "src"), ("b", "other"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert heard == {"a": {"a"}, "b": {"b"}}
    assert MEMORY_TABLES["out_a"].num_rows == 5 and MEMORY_TABLES["out_b"].num_rows == 7


def test_a_subscription_ends_with_its_run(host, tmp_path):
    before = len(host.pm.get_plugins())
    run_recipe(recipe(), LocalStateBackend(tmp_path), host=host, history=False, on_event=lambda e: None)
    with pytest.raises(DataLoaderError, match="missing"):
        run_recipe(recipe(table="missing"), LocalStateBackend(tmp_path), host=host, history=False, on_event=lambda e: None)
    assert len(host.pm.get_plugins()) == before
    registry = host.registry
    run_recipe(recipe(), LocalStateBackend(tmp_path), host=host, history=False, on_event=lambda e: None)
    assert host.registry is registry  # observing does not rebuild the registry


def test_observing_registers_for_the_block_only(host, tmp_path):
    listener = Listener()
    with observing(host, listener):
        run_many([recipe("one"), recipe("two", out="out2")], lambda r: LocalStateBackend(tmp_path), jobs=2, host=host, history=False)
    heard = len(listener.heard)
    assert {what for hook, _, what in listener.heard if hook == "run_started"} == {"one", "two"}
    run_recipe(recipe(), LocalStateBackend(tmp_path), host=host, history=False)
    assert len(listener.heard) == heard


@pytest.mark.parametrize("reporter", [JsonReporter, PlainReporter])
def test_the_reporters_are_observers_of_the_run_event_hook(reporter, host, tmp_path, capsys):
    assert issubclass(reporter, Observer) and issubclass(LiveReporter, Observer)
    with observing(host, reporter()):
        run_recipe(recipe(), LocalStateBackend(tmp_path), host=host, history=False)
    out = capsys.readouterr().out
    assert "observed" in out and ("run_started" in out or "started run" in out)


def test_dataloader_run_reports_through_the_hooks_and_a_plugin_hears_the_same_run(host, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATALOADER_HISTORY", "off")
    listener = Listener()
    host.register(listener, name="listener")
    (tmp_path / "r.yaml").write_text(
        "name: cli_observed\nsource: {type: contract_memory, table: src}\ndestination: {type: contract_memory, table: out}\n"
    )
    registered = len(host.pm.get_plugins())
    result = CliRunner().invoke(cli, ["run", "--log-format", "json", "r.yaml"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    kinds = [line.split('"kind": "')[1].split('"')[0] for line in result.output.splitlines() if '"kind": "' in line]
    assert kinds == [what for hook, _, what in listener.heard if hook == "run_event"]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert len(host.pm.get_plugins()) == registered  # the reporter was unregistered after the command
