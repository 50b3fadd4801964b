"""Checking recipe files without running them: ``dataloader validate``, the pre-commit hook and
``dataloader render --explain``.

It runs the same pipeline as :func:`dataloader.recipe.from_yaml` (chain, merge, delete, templates,
validation) but collects every problem as a :class:`Problem` with its file and line instead of
raising, and knows two relaxations:

- **Base recipes.** A file whose leading comment block holds the line ``# dataloader: base`` is a
  fragment meant only for ``extends:``. It is checked for YAML, its own ``extends`` chain, its
  templates, unknown keys and the type of every value it sets. What only a complete recipe needs
  (required keys and sections, rules that tie several keys of a section together) is checked in
  the recipes that extend it. The marker is a comment, so a child never inherits it.
- **Missing environment** (``allow_missing_env``). An ``env_var('X')`` without a default whose
  variable is unset renders as a placeholder instead of failing, so CI can validate recipes
  without their secrets. A problem about a value built from a placeholder is not reported (its
  type is unknown until the variable is set); every other check still runs.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataloader.errors import RecipeError

BASE_MARKER = re.compile(r"^#\s*dataloader:\s*base\s*$")
_PLACEHOLDER = "<unset env {name}>"
_PLACEHOLDER_PATTERN = re.compile(r"<unset env [^>]+>")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a recipe, where it is and what to do."""

    file: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass
class Checked:
    """What checking one file found, plus the trees ``render --explain`` needs."""

    path: Path
    base: bool = False
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    unused_vars: list[str] = field(default_factory=list)
    merged: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)
    secret_paths: set[str] = field(default_factory=set)
    origins: Any = None

    @property
    def ok(self) -> bool:
        return not self.problems


def is_base_recipe(text: str) -> bool:
    """Whether the leading comment block of a recipe file marks it ``# dataloader: base``."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            return False
        if BASE_MARKER.match(stripped):
            return True
    return False


def check_file(
    path: str | os.PathLike[str],
    *,
    vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    allow_missing_env: bool = False,
    host: Any = None,
) -> Checked:
    """Check the recipe at ``path``; never raises :class:`RecipeError`, returns its problems.

    Connectors, formats and transforms are looked up in ``host``'s registry when one is given
    (a :class:`~dataloader.plugins.PluginHost`), else in the active one, as :func:`from_yaml` does.
    """
    from dataloader.plugins import active_registry
    from dataloader.recipe.paths import resolve_recipe_paths

    checked = Checked(Path(path))
    missing: list[str] = []
    try:
        tree, rendered, secrets = _read_and_render(checked, str(path), vars, env, missing if allow_missing_env else None)
    except RecipeError as exc:
        checked.problems = problems_of(exc, str(path))
        return checked
    registry = host.registry if host is not None else active_registry()
    rendered = resolve_recipe_paths(rendered, tree.origins, registry)
    checked.resolved, checked.secret_paths = rendered, secrets
    checked.placeholders = sorted(set(missing))
    checked.unused_vars = sorted(set(vars or {}) - {name for kind, name in template_names(tree.data) if kind == "var"})
    _collect_problems(checked, tree, allow_missing_env, registry)
    return checked


def _read_and_render(
    checked: Checked, given: str, vars: Mapping[str, Any] | None, env: Mapping[str, str] | None, missing: list[str] | None
) -> tuple[Any, dict[str, Any], Any]:
    """Read, resolve ``extends:`` and render the templates of ``checked.path``; ``missing`` collects
    the environment variables that were absent (rendered as placeholders) when it is a list."""
    from dataloader.recipe.loader import RecipeWarning, read_yaml, resolve_tree
    from dataloader.recipe.templates import render_tree

    path = checked.path
    if path.is_dir():
        raise RecipeError(f"{given}: is a directory, not a recipe file", file=given, key=None, line=None)
    data, lines = read_yaml(path)
    checked.base = is_base_recipe(path.read_text(encoding="utf-8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecipeWarning)
        tree = resolve_tree(data, path, lines)
    checked.warnings, checked.origins, checked.merged = tree.warnings, tree.origins, tree.data

    def placeholder(name: str) -> str:
        missing.append(name)  # type: ignore[union-attr]
        return _PLACEHOLDER.format(name=name)

    rendered, secrets = render_tree(
        tree.data,
        vars=dict(vars or {}),
        env=os.environ if env is None else env,
        locate=tree.origins.locate,
        missing_env=placeholder if missing is not None else None,
    )
    return tree, rendered, secrets


def _collect_problems(checked: Checked, tree: Any, allow_missing_env: bool, registry: Any) -> None:
    """Validate the rendered recipe; a placeholder's key, or a base recipe's missing parts, pass."""
    from dataloader.recipe.validation import validate_tree

    rendered = checked.resolved
    _, found = validate_tree(rendered, registry)
    for key, message in found.items:
        if allow_missing_env and _PLACEHOLDER_PATTERN.search(str(value_at(rendered, key) or "")):
            continue
        if checked.base and not _fragment_problem(rendered, key, message):
            continue
        file, line = tree.origins.locate(key)
        checked.problems.append(Problem(file, line, key, message))


def problems_of(exc: RecipeError, path: str) -> list[Problem]:
    """The problems a :class:`RecipeError` carries, each with its file and line where known."""
    context = exc.context
    problems = context.get("problems")
    if problems:
        lines = context.get("lines") or [context.get("line")] * len(problems)
        return [Problem(file, line, key, message) for (file, key, message), line in zip(problems, lines, strict=False)]
    file = str(context.get("file") or path)
    message = str(exc)
    for prefix in (f"{file}: ", f"{path}: "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    key = context.get("key")
    if key and message.startswith(f"{key}: "):
        message = message[len(key) + 2 :]
    line = context.get("line")
    if line is not None and f"line {line}" in message:  # a YAML error says line and column itself
        line = None
    return [Problem(file, line, key, message)]


def _fragment_problem(tree: dict[str, Any], key: str, message: str) -> bool:
    """Whether a problem still counts in a base recipe: it is about a key the fragment sets."""
    found, value = _lookup(tree, key)
    if not found:
        return False
    return not isinstance(value, dict) or message.startswith("unknown key")


def value_at(tree: Any, key: str) -> Any:
    """The value at dotted ``key`` in ``tree`` (list items by index), or ``None``."""
    return _lookup(tree, key)[1]


def _lookup(tree: Any, key: str) -> tuple[bool, Any]:
    current = tree
    for part in key.split(".") if key else []:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def template_names(tree: Any) -> Iterator[tuple[str, str]]:
    """Every ``("env_var" | "var", NAME)`` the templates of ``tree`` read."""
    for _, value in leaves(tree):
        if isinstance(value, str):
            yield from template_calls(value)


def template_calls(text: str) -> list[tuple[str, str]]:
    """The ``env_var``/``var`` calls of one template string, in order: ``[(function, NAME)]``."""
    if "{{" not in text and "{%" not in text:
        return []
    from jinja2 import Environment, nodes
    from jinja2.exceptions import TemplateSyntaxError

    try:
        parsed = Environment().parse(text)
    except TemplateSyntaxError:
        return []
    calls = []
    for call in parsed.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in ("env_var", "var") and call.args:
            first = call.args[0]
            if isinstance(first, nodes.Const) and isinstance(first.value, str):
                calls.append((call.node.name, first.value))
    return calls


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted_path, value)`` for every scalar of ``tree``, in document order."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list):
        if not tree:
            yield prefix, tree
        for index, value in enumerate(tree):
            yield from leaves(value, f"{prefix}.{index}")
    else:
        yield prefix, tree


__all__ = ["BASE_MARKER", "Checked", "Problem", "check_file", "is_base_recipe", "leaves", "problems_of", "template_calls"]
