"""How ``dataloader run`` shows what a run is doing.

Three reporters share one interface, ``on_event(event)`` plus ``close()``, and each is an observer
of the ``run_event`` lifecycle hook (:class:`Observer`): ``dataloader run`` registers it on the
plugin host for the command, so it hears every run exactly as any plugin does:

- :class:`LiveReporter`: a rich progress display (rows, rows/s, elapsed, ETA when the source can
  estimate a total), used on a terminal when ``CI`` is not set;
- :class:`PlainReporter`: one log line per event, for pipes, files and CI logs;
- :class:`JsonReporter`: one JSON object per event on stdout (``--log-format json``).

Events come from the engine (``dataloader.run.events.RunEvent``); they are read by attribute so a
reporter never depends on more than the documented fields. Runs may be parallel (``--jobs``), so
every reporter serialises its output with a lock.
"""

from __future__ import annotations

import abc
import json
import threading
from typing import TYPE_CHECKING, Any, Protocol

import click

from dataloader.hookspecs import hookimpl

if TYPE_CHECKING:  # rich loads only for the live display: pipes, CI and JSON never pay for it
    from rich.console import Console
    from rich.progress import TaskID

RESULT_FIELDS = ("status", "rows_read", "rows_written", "rows_failed", "duration_s", "run_id", "error")


class Reporter(Protocol):
    def on_event(self, event: Any) -> None: ...

    def close(self) -> None: ...


class Observer(abc.ABC):
    """Makes a reporter an observer of the ``run_event`` hook (``host.pm.register(reporter)``)."""

    @abc.abstractmethod
    def on_event(self, event: Any) -> None:
        """Show one event."""

    @hookimpl
    def run_event(self, run: Any, event: Any) -> None:
        self.on_event(event)


def event_to_dict(event: Any) -> dict[str, Any]:
    """The documented fields of a run event as plain JSON-able data."""
    data: dict[str, Any] = {
        "kind": getattr(event, "kind", None),
        "recipe": getattr(event, "recipe_name", None),
        "run_id": getattr(event, "run_id", None),
        "rows_read": getattr(event, "rows_read", None),
        "rows_written": getattr(event, "rows_written", None),
        "total_estimate": getattr(event, "total_estimate", None),
        "elapsed_s": _round(getattr(event, "elapsed_s", None)),
        "message": getattr(event, "message", None),
    }
    result = getattr(event, "result", None)
    if result is not None:
        data["result"] = result_to_dict(result)
    return data


def result_to_dict(result: Any) -> dict[str, Any]:
    data = {name: getattr(result, name, None) for name in RESULT_FIELDS}
    data["duration_s"] = _round(data["duration_s"])
    return data


def summary_line(recipe_name: str, result: Any) -> str:
    """One line per recipe at the end of ``dataloader run``."""
    line = (
        f"{recipe_name}: {result.status}, {result.rows_read:,} rows read, {result.rows_written:,} written, "
        f"{result.rows_failed:,} failed in {result.duration_s:.1f}s (run {result.run_id})"
    )
    if getattr(result, "rows_failed", 0) and getattr(result, "dead_letter_path", None):
        line += f"; rejected rows in {result.dead_letter_path}"
    if getattr(result, "error", None):
        line += f": {result.error}"
    return line


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


class JsonReporter(Observer):
    def __init__(self) -> None:
        self._lock = threading.Lock()

    def on_event(self, event: Any) -> None:
        from datetime import datetime, timezone

        data = event_to_dict(event)
        failed = data.get("result", {}).get("status") == "failed"
        level = "warning" if data["kind"] == "warning" else "error" if failed else "info"
        stamped = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level, **data}
        line = json.dumps(stamped, default=str)
        with self._lock:
            click.echo(line)

    def close(self) -> None:
        pass


class PlainReporter(Observer):
    """Log lines; progress events are thinned to one per recipe every few seconds of run time."""

    every_s = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._started: set[tuple[str, str]] = set()

    def on_event(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        name = getattr(event, "recipe_name", "?")
        elapsed = getattr(event, "elapsed_s", 0.0) or 0.0
        if kind == "progress":
            if elapsed - self._last.get(name, float("-inf")) < self.every_s:
                return
            self._last[name] = elapsed
        if kind == "run_started":  # sent again once the source has estimated its total
            started = (name, str(getattr(event, "run_id", "?")))
            if started in self._started:
                return
            self._started.add(started)
        line = self._format(kind, name, event, elapsed)
        if line:
            with self._lock:
                click.echo(line)

    @staticmethod
    def _format(kind: str, name: str, event: Any, elapsed: float) -> str | None:
        rows_read = getattr(event, "rows_read", 0) or 0
        rows_written = getattr(event, "rows_written", 0) or 0
        if kind == "run_started":
            return f"{name}: started run {getattr(event, 'run_id', '?')}"
        if kind == "progress":
            rate = rows_read / elapsed if elapsed > 0 else 0.0
            total = getattr(event, "total_estimate", None)
            of_total = f" of ~{total:,}" if total else ""
            return f"{name}: {rows_read:,}{of_total} rows read, {rows_written:,} written ({rate:,.0f} rows/s, {elapsed:.1f}s)"
        if kind == "committed":
            return f"{name}: committed {rows_written:,} rows"
        if kind == "warning":
            return f"{name}: warning: {getattr(event, 'message', '')}"
        if kind == "info":  # an executor's notes: a dashboard link, a finished partition
            return f"{name}: {getattr(event, 'message', '')}"
        return None  # run_finished: the summary line says it

    def close(self) -> None:
        pass


def _rows_per_second() -> Any:
    """A rich progress column showing rows/s."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s")

    return RowsPerSecond()


class LiveReporter(Observer):
    """A rich progress display with one line per running recipe."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} rows"),
            _rows_per_second(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.progress.start()
        self._tasks: dict[str, TaskID] = {}

    def on_event(self, event: Any) -> None:
        name = getattr(event, "recipe_name", "?")
        kind = getattr(event, "kind", "")
        with self._lock:
            task = self._tasks.get(name)
            if task is None:
                task = self._tasks[name] = self.progress.add_task(name, total=None)
            total = getattr(event, "total_estimate", None)
            self.progress.update(task, completed=getattr(event, "rows_read", 0) or 0, total=total)
            if kind == "warning":
                self.progress.console.print(f"[yellow]{name}: warning: {getattr(event, 'message', '')}")
            if kind == "run_finished":
                self.progress.update(task, total=getattr(event, "rows_read", 0) or 0)
                self.progress.stop_task(task)

    def close(self) -> None:
        self.progress.stop()


def choose_reporter(log_format: str, *, terminal: bool, ci: bool) -> Reporter:
    """JSON when asked; the live display only on a terminal outside CI; plain lines otherwise."""
    if log_format == "json":
        return JsonReporter()
    if terminal and not ci:
        return LiveReporter()
    return PlainReporter()
