"""Retries of transient failures, with exponential backoff and jitter (tenacity).

Only errors that say they are transient (``DataLoaderError.transient``, set by connectors on
``TransientConnectorError``) are retried; everything else fails at once. The engine retries whole
runs: a run is a transaction, so a retry can neither lose nor duplicate rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from dataloader.errors import DataLoaderError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, DataLoaderError) and exc.transient


def retrying(
    func: Callable[[], T],
    policy: Any,
    *,
    before_sleep: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Call ``func`` until it succeeds, a permanent error occurs, or ``policy.max_attempts`` is spent.

    ``policy`` has ``max_attempts``, ``initial_delay`` and ``max_delay`` (``runtime.retries``).
    The last error is raised as it was.
    """

    def sleeping(state: RetryCallState) -> None:
        if before_sleep is not None and state.outcome is not None and state.next_action is not None:
            before_sleep(state.outcome.exception(), state.next_action.sleep)

    controller = Retrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait_random_exponential(multiplier=policy.initial_delay, max=policy.max_delay),
        retry=retry_if_exception(is_transient),
        before_sleep=sleeping,
        reraise=True,
    )
    return controller(func)


__all__ = ["retrying", "is_transient"]
