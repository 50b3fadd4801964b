"""What a run tells the world, through one channel: the lifecycle hooks of its plugin host.

The engine announces each moment with :meth:`Observers.notify`: ``run_started``, ``batch_written``,
``run_finished`` and, for everything a person watches (progress, warnings, commits), ``run_event``
with a :class:`RunEvent`. The reporters of ``dataloader run`` (the console, plain and JSON lines) are
observers of those hooks like any plugin; the ``on_event`` callback of
:func:`dataloader.engine.run_recipe` is a subscription to ``run_event`` for that one run
(:func:`subscribe`). An observer that raises is logged and skipped: it never breaks the run, nor
keeps the other observers from hearing it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataloader.hookspecs import hookimpl

if TYPE_CHECKING:
    from dataloader.plugins import PluginHost
    from dataloader.recipe import Recipe

log = logging.getLogger("dataloader.engine")

EventHandler = Callable[["RunEvent"], None]


@dataclass
class RunEvent:
    """What a reporter sees: ``run_started``, ``progress``, ``committed``, ``warning``, ``run_finished``."""

    kind: str
    recipe_name: str
    run_id: str
    rows_read: int = 0
    rows_written: int = 0
    total_estimate: int | None = None
    elapsed_s: float = 0.0
    message: str | None = None
    result: RunResult | None = None


@dataclass
class RunResult:
    """The outcome of one run. ``status`` is ``success``, ``partial_success`` (rows went to the
    dead-letter queue) or ``failed``."""

    status: str
    recipe_name: str
    run_id: str
    rows_read: int = 0
    rows_written: int = 0
    rows_failed: int = 0
    duration_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    error: str | None = None
    state_before: dict[str, Any] = field(default_factory=dict)
    state_after: dict[str, Any] = field(default_factory=dict)
    dead_letter_path: str | None = None
    attempts: int = 1
    #: The schema changes this run applied (``SchemaChange.to_dict()`` dicts); empty when none.
    schema_changes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunInfo:
    """Handed to the lifecycle hooks (``run_started``, ``batch_written``, ``run_finished``)."""

    recipe: Recipe
    run_id: str
    started_at: str


class Observers:
    """Calls a lifecycle hook's implementations one by one, so a failing one only fails itself."""

    def __init__(self, host: PluginHost) -> None:
        self.pm = host.pm
        self._trace = host.pm.trace.root.get("hook")

    def notify(self, name: str, **kwargs: Any) -> None:
        """Tell every observer of hook ``name`` (newest registration first, as pluggy calls them)."""
        self._trace(name, kwargs)  # writes only under DATALOADER_TRACE_HOOKS
        for impl in reversed(list(getattr(self.pm.hook, name).get_hookimpls())):
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:  # observers must never break a run
                log.warning("the %s hook of plugin '%s' failed: %s", name, impl.plugin_name, exc)


class _Subscriber:
    """One run's ``on_event`` callback, as an observer of ``run_event``."""

    def __init__(self, run_id: str, callback: EventHandler) -> None:
        self.run_id, self.callback = run_id, callback

    @hookimpl
    def run_event(self, run: RunInfo, event: RunEvent) -> None:
        if run.run_id == self.run_id:
            self.callback(event)


@contextlib.contextmanager
def observing(host: PluginHost, observer: Any) -> Iterator[None]:
    """``observer`` (an object with hook implementations) hears the host's runs while the block runs.

    Registered on the host's plugin manager only: the registry of connectors and transforms is not
    rebuilt, and runs going on in other threads are not disturbed.
    """
    name = host.pm.register(observer)
    try:
        host.pm.check_pending()
        yield
    finally:
        host.pm.unregister(name=name)


def subscribe(host: PluginHost, run_id: str, callback: EventHandler | None) -> contextlib.AbstractContextManager[None]:
    """``callback`` receives the :class:`RunEvent` of run ``run_id`` (and of no other run)."""
    if callback is None:
        return contextlib.nullcontext()
    return observing(host, _Subscriber(run_id, callback))


def new_run_id() -> str:
    """Sortable and unique: UTC time plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


__all__ = [
    "EventHandler",
    "Observers",
    "RunEvent",
    "RunInfo",
    "RunResult",
    "new_run_id",
    "now",
    "observing",
    "subscribe",
]
