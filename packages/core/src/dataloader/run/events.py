"""What a run tells the world: events for reporters, the result, and what lifecycle hooks receive.

Reporters (the console, plain and JSON lines) subscribe to :class:`RunEvent` through the ``on_event``
callback of :func:`dataloader.engine.run_recipe`; plugins observe the same moments through the
lifecycle hooks, which get :class:`RunInfo` and :class:`RunResult`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataloader.recipe import Recipe

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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunInfo:
    """Handed to the lifecycle hooks (``run_started``, ``batch_written``, ``run_finished``)."""

    recipe: Recipe
    run_id: str
    started_at: str


def new_run_id() -> str:
    """Sortable and unique: UTC time plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


__all__ = ["EventHandler", "RunEvent", "RunInfo", "RunResult", "new_run_id", "now"]
