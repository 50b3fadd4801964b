"""Reading recipe files: safe YAML, ``extends:`` chains, ``delete:`` paths, and where each key came from.

Each file is parsed twice by PyYAML's safe loader: once for the data and once as a node tree, only
to remember the line of every key so that a validation error can point at it. Recipes are small,
so the second parse costs nothing worth avoiding.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dataloader.errors import RecipeError
from dataloader.recipe.merge import deep_merge, delete_path

log = logging.getLogger("dataloader.recipe")


class RecipeWarning(UserWarning):
    """Something in a recipe that is probably a mistake but does not stop it (a stale ``delete`` path)."""


@dataclass
class Origins:
    """For every dotted key path of the merged recipe: the file and line that set it last."""

    locations: dict[str, tuple[str, int]] = field(default_factory=dict)
    top_file: str = "<recipe>"

    def record(self, file: str, lines: dict[str, int]) -> None:
        for key, line in lines.items():
            self.locations[key] = (file, line)

    def locate(self, key_path: str) -> tuple[str, int | None]:
        """The file and line of ``key_path``, or of its closest recorded parent."""
        parts = key_path.split(".") if key_path else []
        while parts:
            found = self.locations.get(".".join(parts))
            if found:
                return found
            parts.pop()
        return self.top_file, None


@dataclass
class LoadedTree:
    """A merged recipe tree before templates and validation."""

    data: dict[str, Any]
    files: list[Path]
    origins: Origins
    warnings: list[str]


def read_yaml(path: Path, *, named_by: tuple[Path, str] | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse one recipe file: its mapping and the line of each key path."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named_by is not None:
            parent_file, value = named_by
            raise RecipeError(
                f"{parent_file}: extends: parent recipe '{value}' not found (looked for {path})",
                file=str(parent_file),
                key="extends",
                line=None,
            ) from None
        raise RecipeError(f"{path}: recipe file not found", file=str(path), key=None, line=None) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RecipeError(f"{path}: cannot read recipe: {reason}", file=str(path), key=None, line=None) from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Safe-load ``text``; a syntax error names the line and column."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        where = f"line {line}, column {mark.column + 1}" if mark is not None else "unknown position"
        raise RecipeError(f"{file}: invalid YAML at {where}: {problem}", file=file, key=None, line=line) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"{file}: a recipe must be a mapping of keys (name, source, destination, ...), not a {type(data).__name__}",
            file=file,
            key=None,
            line=1,
        )
    lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", lines)
    return data, lines


def _collect_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, f"{key}.", lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}{index}"
            lines[key] = item.start_mark.line + 1
            _collect_lines(item, f"{key}.", lines)


def resolve_tree(data: dict[str, Any], path: Path | None, lines: dict[str, int] | None = None) -> LoadedTree:
    """Merge ``data`` with its ``extends`` chain and apply every ``delete`` along the way."""
    origins = Origins(top_file=str(path) if path else "<recipe>")
    files: list[Path] = []
    notes: list[str] = []
    merged = _resolve(data, path, lines or {}, [], origins, files, notes)
    return LoadedTree(merged, files, origins, notes)


def _resolve(
    data: dict[str, Any],
    path: Path | None,
    lines: dict[str, int],
    stack: list[Path],
    origins: Origins,
    files: list[Path],
    notes: list[str],
) -> dict[str, Any]:
    own = dict(data)
    extends = own.pop("extends", None)
    deletes = own.pop("delete", None) or []
    label = str(path) if path else "<recipe>"
    base: dict[str, Any] = {}
    if extends is not None:
        if not isinstance(extends, str) or not extends.strip():
            raise RecipeError(
                f"{label}: extends: must be the path of one parent recipe, relative to this file",
                file=label,
                key="extends",
                line=lines.get("extends"),
            )
        directory = path.parent if path else Path.cwd()
        parent_path = Path(os.path.normpath(directory / extends))
        here = [*stack, path.resolve()] if path is not None else stack
        if parent_path.resolve() in here:
            chain = [*here, parent_path]
            cycle = " -> ".join(p.name for p in chain)
            raise RecipeError(
                f"{label}: extends: cycle in extends chain: {cycle}",
                file=label,
                key="extends",
                line=lines.get("extends"),
                cycle=[str(p) for p in chain],
            )
        parent_data, parent_lines = read_yaml(parent_path, named_by=(Path(label), extends))
        base = _resolve(parent_data, parent_path, parent_lines, here, origins, files, notes)
    if path is not None:
        files.append(path)
    origins.record(label, _shift_steps(lines, base, own))
    merged = deep_merge(base, own)
    if isinstance(deletes, str):
        deletes = [deletes]
    if not isinstance(deletes, list) or not all(isinstance(d, str) for d in deletes):
        raise RecipeError(
            f"{label}: delete: must be a list of dotted key paths, e.g. [transform.steps]",
            file=label,
            key="delete",
            line=lines.get("delete"),
        )
    for dotted in deletes:
        if not delete_path(merged, dotted):
            message = f"{label}: delete: path '{dotted}' does not exist in the merged recipe; nothing deleted"
            notes.append(message)
            log.warning("%s", message)
            warnings.warn(message, RecipeWarning, stacklevel=2)
    return merged


def _shift_steps(lines: dict[str, int], base: dict[str, Any], own: dict[str, Any]) -> dict[str, int]:
    """Renumber this file's ``transform.steps.N`` lines to their index after concatenation."""
    inherited = (base.get("transform") or {}).get("steps") if isinstance(base.get("transform"), dict) else None
    mine = (own.get("transform") or {}).get("steps") if isinstance(own.get("transform"), dict) else None
    if not (isinstance(inherited, list) and inherited and isinstance(mine, list)):
        return lines
    prefix = "transform.steps."
    shifted = {}
    for key, line in lines.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            if index.isdigit():
                key = f"{prefix}{int(index) + len(inherited)}" + (f".{rest}" if rest else "")
        shifted[key] = line
    return shifted
