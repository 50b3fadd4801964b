"""Several recipes in one call: what ``dataloader run A B C [--jobs N]`` and :func:`dataloader.engine.run_many` share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dataloader.errors import DataLoaderError

if TYPE_CHECKING:
    from dataloader.recipe import Recipe
    from dataloader.run.events import RunResult
    from dataloader.state import StateBackend


def run_each(
    recipes: Sequence[Recipe],
    backend_for: Callable[[Recipe], StateBackend],
    run: Callable[..., RunResult],
    *,
    jobs: int = 1,
    **options: Any,
) -> list[RunResult | DataLoaderError]:
    """Run several recipes, one after another or ``jobs`` at a time; failures are returned, not raised.

    :param recipes: what to run, in order (results come back in the same order).
    :param backend_for: the state backend of each recipe (an error building it is that recipe's failure).
    :param run: runs one recipe (:func:`dataloader.engine.run_recipe`, which
        :func:`dataloader.engine.run_many` passes).
    :param jobs: how many run at once (threads; each run holds its own lease).
    :param options: passed to ``run`` for each (``resume``, ``on_event``, ...).
    """

    def one(recipe: Recipe) -> RunResult | DataLoaderError:
        try:
            return run(recipe, backend_for(recipe), **options)
        except DataLoaderError as exc:
            return exc

    if jobs <= 1 or len(recipes) <= 1:
        return [one(recipe) for recipe in recipes]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dataloader-run") as pool:
        return list(pool.map(one, recipes))


__all__ = ["run_each"]
