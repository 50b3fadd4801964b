"""The resolution pipeline: chain → merge → delete → templates → validation → :class:`Recipe`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dataloader.errors import RecipeError
from dataloader.plugins import PluginHost, active_registry
from dataloader.recipe.loader import Origins, project_root_for, read_yaml, resolve_tree
from dataloader.recipe.models import Recipe, install_builder
from dataloader.recipe.paths import resolve_recipe_paths
from dataloader.recipe.templates import render_tree
from dataloader.recipe.validation import validate_tree


def from_yaml(
    path: str | os.PathLike[str],
    vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    project_root: str | os.PathLike[str] | None = None,
    host: PluginHost | None = None,
) -> Recipe:
    """Load, merge, render and validate the recipe at ``path``.

    ``vars`` feed ``{{ var('x') }}``; ``env`` replaces ``os.environ`` for ``{{ env_var('X') }}``.
    The recipe and every file it extends must lie inside ``project_root`` (default: see
    :func:`dataloader.recipe.loader.project_root_for`). ``host`` is the plugin host to validate
    against (default: the process-wide one); pass the same host to :func:`run_recipe`.
    Every problem raises :class:`~dataloader.errors.RecipeError` naming the file and key path;
    ``error.context["problems"]`` lists them all as ``(file, key_path, message)``.
    """
    recipe_path = Path(path)
    if recipe_path.is_dir():
        raise RecipeError(
            f"{recipe_path}: is a directory, not a recipe file", file=str(recipe_path), key=None, line=None
        )
    root = project_root_for(recipe_path, project_root)
    data, lines = read_yaml(recipe_path, root=root)
    return build_recipe(data, path=recipe_path, vars=vars, env=env, lines=lines, root=root, host=host)


def build_recipe(
    data: dict[str, Any],
    *,
    path: Path | None,
    vars: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
    lines: dict[str, int] | None,
    root: Path | None = None,
    host: PluginHost | None = None,
) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a mapping of keys (name, source, destination, ...)", file=str(path))
    tree = resolve_tree(data, path, lines, root=root)
    rendered, secret_paths = render_tree(
        tree.data,
        vars=dict(vars or {}),
        env=os.environ if env is None else env,
        locate=tree.origins.locate,
    )
    registry = host.registry if host is not None else active_registry()
    rendered = resolve_recipe_paths(rendered, tree.origins, registry)
    fields, problems = validate_tree(rendered, registry)
    if problems.items:
        raise _invalid(problems.items, tree.origins)
    return Recipe(
        **fields,
        path=path,
        files=tree.files,
        resolved=rendered,
        secret_paths=secret_paths,
        warnings=tree.warnings,
    )


def _invalid(items: list[tuple[str, str]], origins: Origins) -> RecipeError:
    located = []
    for key, message in items:
        file, line = origins.locate(key)
        located.append((file, key, message, line))
    lines = [f"{file}: {key}: {message}" for file, key, message, _ in located]
    first_file, first_key, _, first_line = located[0]
    return RecipeError(
        "\n".join(lines),
        file=first_file,
        key=first_key,
        line=first_line,
        problems=[(file, key, message) for file, key, message, _ in located],
        lines=[line for *_, line in located],
    )


install_builder(build_recipe)
